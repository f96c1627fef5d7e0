//! Table definitions shared by both backends (see `types.rs` for the per-backend column types).

diesel::table! {
    use diesel::sql_types::*;
    use crate::store::types::{Ts, TextList};

    configs (id) {
        id -> Text,
        endpoint -> Text,
        secret -> Text,
        event_types -> TextList,
        active -> Bool,
        name -> Nullable<Text>,
        created_at -> Ts,
        updated_at -> Ts,
        deleted_at -> Nullable<Ts>,
        failing_since -> Nullable<Ts>,
        previous_secret -> Nullable<Text>,
        previous_secret_expires_at -> Nullable<Ts>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::store::types::Ts;

    deliveries (id) {
        id -> Text,
        event_id -> Text,
        idempotency_key -> Text,
        config_id -> Text,
        event_type -> Text,
        payload -> Text,
        status -> Text,
        attempt_count -> BigInt,
        first_attempt_at -> Nullable<Ts>,
        next_attempt_at -> Nullable<Ts>,
        claimed_at -> Nullable<Ts>,
        last_attempt_at -> Nullable<Ts>,
        last_status_code -> Nullable<BigInt>,
        last_error -> Text,
        replay_generation -> BigInt,
        created_at -> Ts,
        updated_at -> Ts,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::store::types::Ts;

    attempts (id) {
        id -> Text,
        delivery_id -> Text,
        attempt_number -> BigInt,
        replay_generation -> BigInt,
        endpoint -> Text,
        outcome -> Text,
        status_code -> BigInt,
        error -> Text,
        duration_ms -> Nullable<BigInt>,
        response_excerpt -> Text,
        created_at -> Ts,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::store::types::Ts;

    replay_requests (key) {
        key -> Text,
        request_hash -> Text,
        response -> Text,
        created_at -> Ts,
    }
}

diesel::joinable!(deliveries -> configs (config_id));
diesel::joinable!(attempts -> deliveries (delivery_id));
diesel::allow_tables_to_appear_in_same_query!(configs, deliveries, attempts, replay_requests);
