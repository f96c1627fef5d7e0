{{/* The chart name, or nameOverride. */}}
{{- define "webhooks.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every resource name: fullnameOverride, else <release>-<chart> (just <release> when
it already contains the chart name). Kept short enough for the `-serve`/`-worker` suffixes.
*/}}
{{- define "webhooks.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* chart label: name-version */}}
{{- define "webhooks.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every resource. */}}
{{- define "webhooks.labels" -}}
helm.sh/chart: {{ include "webhooks.chart" . }}
{{ include "webhooks.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: webhooks
{{- end }}

{{/* Labels that select this release's pods (add app.kubernetes.io/component for one role). */}}
{{- define "webhooks.selectorLabels" -}}
app.kubernetes.io/name: {{ include "webhooks.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "webhooks.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "webhooks.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "webhooks.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The Secret holding POSTGRES_URI and the other credentials: existingSecret or the chart's. */}}
{{- define "webhooks.secretName" -}}
{{- default (include "webhooks.fullname" .) .Values.existingSecret }}
{{- end }}

{{/*
The pods' terminationGracePeriodSeconds: SHUTDOWN_TIMEOUT plus a margin, so that a worker that
is still finishing its in-flight calls and committing offsets is never killed.
*/}}
{{- define "webhooks.terminationGracePeriodSeconds" -}}
{{- add (int .Values.shutdownTimeoutSeconds) (int .Values.terminationGraceMarginSeconds) }}
{{- end }}

{{/* The inputs the chart cannot run without; fails the render with what is missing. */}}
{{- define "webhooks.validate" -}}
{{- if and (not .Values.existingSecret) (not .Values.postgresql.uri) }}
{{- fail "set postgresql.uri (a PostgreSQL URI) or existingSecret (a Secret holding POSTGRES_URI)" }}
{{- end }}
{{- if not .Values.kafka.brokers }}
{{- fail "set kafka.brokers (at least one host:port)" }}
{{- end }}
{{- end }}

{{/*
The environment of serve and worker that is not secret, as a dict: the chart's values as flag
variables, then .Values.config over them.
*/}}
{{- define "webhooks.env" -}}
{{- $v := .Values }}
{{- $env := dict
  "LISTEN" ":8080"
  "LOG_LEVEL" $v.logLevel
  "JSON_FORMATTING_LOGGER" "true"
  "SHUTDOWN_TIMEOUT" (printf "%ds" (int $v.shutdownTimeoutSeconds))
  "PUBLISHER_KAFKA_ENABLED" "true"
  "PUBLISHER_KAFKA_BROKER" (join "," $v.kafka.brokers)
  "KAFKA_TOPICS" (join "," $v.kafka.topics)
  "PUBLISHER_QUEUE_GROUP" $v.kafka.consumerGroup
  "PUBLISHER_KAFKA_TLS_ENABLED" (toString $v.kafka.tls)
  "PUBLISHER_KAFKA_SASL_ENABLED" (toString $v.kafka.sasl.enabled)
}}
{{- if $v.kafka.sasl.enabled }}
{{- $_ := set $env "PUBLISHER_KAFKA_SASL_MECHANISM" $v.kafka.sasl.mechanism }}
{{- $_ := set $env "PUBLISHER_KAFKA_SASL_USERNAME" $v.kafka.sasl.username }}
{{- end }}
{{- if $v.auth.enabled }}
{{- $_ := set $env "AUTH_ENABLED" "true" }}
{{- $_ := set $env "AUTH_ISSUERS" (join "," $v.auth.issuers) }}
{{- $_ := set $env "AUTH_CHECK_SCOPES" (toString $v.auth.checkScopes) }}
{{- $_ := set $env "AUTH_SERVICE" $v.auth.service }}
{{- end }}
{{- with $v.tracing }}
{{- if .exporter }}
{{- $_ := set $env "OTEL_TRACES_EXPORTER" .exporter }}
{{- $_ := set $env "OTEL_TRACES_EXPORTER_OTLP_ENDPOINT" .endpoint }}
{{- $_ := set $env "OTEL_TRACES_EXPORTER_OTLP_MODE" .mode }}
{{- $_ := set $env "OTEL_TRACES_EXPORTER_OTLP_INSECURE" (toString .insecure) }}
{{- $_ := set $env "OTEL_TRACES_BATCH" (toString .batch) }}
{{- $_ := set $env "OTEL_SERVICE_NAME" .serviceName }}
{{- $_ := set $env "OTEL_RESOURCE_ATTRIBUTES" (join "," .resourceAttributes) }}
{{- end }}
{{- end }}
{{- range $k, $val := $v.config }}
{{- $_ := set $env $k (toString $val) }}
{{- end }}
{{- /* One `NAME: "value"` line each, sorted; every value quoted (ConfigMap data are strings). */}}
{{- $lines := list }}
{{- range $k, $val := $env }}
{{- $lines = append $lines (printf "%s: %s" $k (quote $val)) }}
{{- end }}
{{- join "\n" $lines }}
{{- end }}

{{/*
A Deployment of one role. Called with (dict "root" $ "role" "serve"|"worker").
*/}}
{{- define "webhooks.deployment" -}}
{{- $root := .root }}
{{- $role := .role }}
{{- $values := index $root.Values $role }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "webhooks.fullname" $root }}-{{ $role }}
  labels:
    {{- include "webhooks.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ $role }}
spec:
  {{- if not $values.autoscaling.enabled }}
  replicas: {{ $values.replicaCount }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "webhooks.selectorLabels" $root | nindent 6 }}
      app.kubernetes.io/component: {{ $role }}
  template:
    metadata:
      annotations:
        # Roll the pods when their configuration changes.
        checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
        checksum/secret: {{ include (print $root.Template.BasePath "/secret.yaml") $root | sha256sum }}
        {{- with $root.Values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      labels:
        {{- include "webhooks.labels" $root | nindent 8 }}
        app.kubernetes.io/component: {{ $role }}
        {{- with $root.Values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      serviceAccountName: {{ include "webhooks.serviceAccountName" $root }}
      automountServiceAccountToken: false
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      # Above SHUTDOWN_TIMEOUT: on SIGTERM the process stops within it by itself.
      terminationGracePeriodSeconds: {{ include "webhooks.terminationGracePeriodSeconds" $root }}
      containers:
        - name: {{ $role }}
          image: {{ include "webhooks.image" $root | quote }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          args: [{{ $role | quote }}]
          ports:
            - name: http
              containerPort: 8080
              protocol: TCP
          envFrom:
            - configMapRef:
                name: {{ include "webhooks.fullname" $root }}
            - secretRef:
                name: {{ include "webhooks.secretName" $root }}
          # /_healthcheck probes storage (and Kafka, in the worker) with a 2 s deadline each.
          livenessProbe:
            httpGet:
              path: /_healthcheck
              port: http
            periodSeconds: 10
            timeoutSeconds: 5
            failureThreshold: 6
          readinessProbe:
            httpGet:
              path: /_healthcheck
              port: http
            periodSeconds: 5
            timeoutSeconds: 5
            failureThreshold: 2
          resources:
            {{- toYaml $values.resources | nindent 12 }}
          securityContext:
            {{- toYaml $root.Values.securityContext | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
      volumes:
        - name: tmp
          emptyDir: {}
      {{- with $root.Values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}
