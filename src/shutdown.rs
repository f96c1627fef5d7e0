//! Signals → the process's stop (spec §1.5): the first SIGINT or SIGTERM starts a graceful stop,
//! a second one during it ends the process at once.

use tokio::signal::unix::{signal, Signal, SignalKind};

/// SIGINT and SIGTERM, as one stream of "stop" requests.
pub struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    /// Installs the handlers; from now on these signals no longer kill the process by default.
    pub fn new() -> std::io::Result<Signals> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// Resolves on the next SIGINT or SIGTERM.
    pub async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}
