{{/* Chart name, at most 63 characters. */}}
{{- define "ingest-api.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name of the resources: release name and chart name, at most 63 characters. */}}
{{- define "ingest-api.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "ingest-api.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ingest-api.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: api
{{- end -}}

{{- define "ingest-api.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "ingest-api.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: fitness
{{- end -}}

{{/*
The settings the umbrella chart shares between the services (kafka, schemaRegistry, secrets,
image tag and pull policy): this chart's values with global.fitness laid over them. A global
value applies when it is set (not empty, zero or false).
*/}}
{{- define "ingest-api.settings" -}}
{{- $global := get (.Values.global | default dict) "fitness" | default dict -}}
{{- $own := dict "kafka" .Values.kafka "schemaRegistry" .Values.schemaRegistry "secrets" .Values.secrets "image" (pick .Values.image "tag" "digest" "pullPolicy") -}}
{{- toYaml (mergeOverwrite (deepCopy $own) (deepCopy $global)) -}}
{{- end -}}

{{- define "ingest-api.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "ingest-api.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "ingest-api.secretName" -}}
{{- $s := include "ingest-api.settings" . | fromYaml -}}
{{- default (include "ingest-api.fullname" .) $s.secrets.existingSecret -}}
{{- end -}}

{{- define "ingest-api.image" -}}
{{- $s := include "ingest-api.settings" . | fromYaml -}}
{{- if $s.image.digest -}}
{{- printf "%s@%s" .Values.image.repository $s.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion $s.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* A value as an environment variable's text: whole numbers without an exponent. */}}
{{- define "ingest-api.envValue" -}}
{{- if kindIs "float64" . -}}{{- if eq (floor .) . -}}{{- int64 . -}}{{- else -}}{{- . -}}{{- end -}}{{- else -}}{{- . -}}{{- end -}}
{{- end -}}

{{/* Fails the rendering, with what to do, when the values cannot work. */}}
{{- define "ingest-api.validate" -}}
{{- $s := include "ingest-api.settings" . | fromYaml -}}
{{- if not $s.kafka.bootstrapServers -}}
{{- fail "kafka.bootstrapServers is required: the Kafka bootstrap servers, e.g. fitness-kafka-bootstrap.kafka:9093 (in the fitness chart: global.fitness.kafka.bootstrapServers)" -}}
{{- end -}}
{{- if not (or $s.schemaRegistry.url $s.schemaRegistry.urlFromSecret) -}}
{{- fail "schemaRegistry.url is required: the Confluent-compatible Schema Registry, e.g. http://schema-registry.kafka:8081 (or set schemaRegistry.urlFromSecret to read it, with credentials, from the Secret)" -}}
{{- end -}}
{{- if and $s.secrets.existingSecret $s.secrets.create -}}
{{- fail "secrets.existingSecret and secrets.create are both set: use one (existingSecret in production)" -}}
{{- end -}}
{{- $rotation := .Values.auth.tokenSecretRotation -}}
{{- if not (or $s.secrets.existingSecret $s.secrets.create) -}}
{{- fail (printf "secrets.existingSecret is required: the name of a Secret with the keys %s and %s (see README.md, \"Secrets\"). For a test or a demo only, set secrets.create=true with secrets.databaseUrl and secrets.%s instead (the values are then kept in Helm's release history)." $s.secrets.keys.databaseUrl (ternary $s.secrets.keys.authTokenSecrets $s.secrets.keys.authTokenSecret $rotation) (ternary "authTokenSecrets" "authTokenSecret" $rotation)) -}}
{{- end -}}
{{- if $s.secrets.create -}}
{{- $_ := required "secrets.databaseUrl is required with secrets.create=true" $s.secrets.databaseUrl -}}
{{- if $rotation -}}
{{- $entry := "\\s*[A-Za-z0-9._-]{1,64}=[^,]{16,}" -}}
{{- if not (regexMatch (printf "^%s(,%s)*$" $entry $entry) (required "secrets.authTokenSecrets is required with secrets.create=true and auth.tokenSecretRotation: kid1=secret1,kid2=secret2, the current secret first" $s.secrets.authTokenSecrets)) -}}
{{- fail "secrets.authTokenSecrets must be kid1=secret1,kid2=secret2 (current first): key ids of 1 to 64 of A-Z a-z 0-9 . _ -, secrets of at least 16 bytes without commas" -}}
{{- end -}}
{{- else if lt (len (required "secrets.authTokenSecret is required with secrets.create=true" $s.secrets.authTokenSecret)) 16 -}}
{{- fail "secrets.authTokenSecret is shorter than 16 bytes: use a long random value, e.g. openssl rand -hex 32" -}}
{{- end -}}
{{- if $s.kafka.sasl.enabled -}}
{{- $_ := required "secrets.kafkaSaslUsername is required with secrets.create=true and kafka.sasl.enabled" $s.secrets.kafkaSaslUsername -}}
{{- $_ := required "secrets.kafkaSaslPassword is required with secrets.create=true and kafka.sasl.enabled" $s.secrets.kafkaSaslPassword -}}
{{- end -}}
{{- if $s.schemaRegistry.urlFromSecret -}}
{{- $_ := required "secrets.schemaRegistryUrl is required with secrets.create=true and schemaRegistry.urlFromSecret" $s.secrets.schemaRegistryUrl -}}
{{- end -}}
{{- if and $s.schemaRegistry.auth.enabled (not $s.schemaRegistry.auth.existingSecret) -}}
{{- $_ := required "secrets.schemaRegistryUserInfo (user:password of a registry user with the writer role) is required with secrets.create=true and schemaRegistry.auth.enabled; set schemaRegistry.auth.enabled=false only for a registry without authentication" $s.secrets.schemaRegistryUserInfo -}}
{{- end -}}
{{- end -}}
{{- range $key, $_ := $s.kafka.config -}}
{{- if regexMatch "(?i)(password|secret|sasl\\.username|sasl\\.jaas|private|key\\.pem)" $key -}}
{{- fail (printf "kafka.config.%s looks like a secret: credentials come from the Secret (kafka.sasl.enabled), never from values" $key) -}}
{{- end -}}
{{- if not (regexMatch "^[a-z0-9]+(\\.[a-z0-9]+)*$" $key) -}}
{{- fail (printf "kafka.config.%s: librdkafka property names here are lower case words joined by dots (each becomes a KAFKA_* variable)" $key) -}}
{{- end -}}
{{- if eq $key "bootstrap.servers" -}}
{{- fail "kafka.config.bootstrap.servers: use kafka.bootstrapServers" -}}
{{- end -}}
{{- end -}}
{{- if and .Values.autoscaling.enabled (not (dig "requests" "cpu" "" .Values.resources)) -}}
{{- fail "autoscaling.enabled needs resources.requests.cpu: the HPA scales on CPU utilisation of the request" -}}
{{- end -}}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) -}}
{{- fail "autoscaling.minReplicas is above autoscaling.maxReplicas" -}}
{{- end -}}
{{- if ge (int .Values.config.exportMaxConcurrent) (int .Values.config.readPoolSize) -}}
{{- fail (printf "config.exportMaxConcurrent (%d) must be below config.readPoolSize (%d): each export holds a read connection for as long as it streams, so the other reads would have none" (int .Values.config.exportMaxConcurrent) (int .Values.config.readPoolSize)) -}}
{{- end -}}
{{- include "ingest-api.validateAuth" . -}}
{{- range $name := list "device" "user" "reads" -}}
{{- $limit := get $.Values.rateLimit $name -}}
{{- if and (gt (float64 $limit.perSecond) 0.0) (lt (int $limit.burst) 1) -}}
{{- fail (printf "rateLimit.%s.burst is 0 while rateLimit.%s.perSecond is %v: give a burst of at least 1, or perSecond 0 to turn the limit off" $name $name $limit.perSecond) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The identity provider settings the service would refuse at start, refused here instead. */}}
{{- define "ingest-api.validateAuth" -}}
{{- $jwks := .Values.auth.jwks -}}
{{- $jwt := .Values.auth.jwt -}}
{{- if and $jwks.configMap $jwks.url -}}
{{- fail "auth.jwks.configMap and auth.jwks.url are both set: the service reads one JWKS, from a file (AUTH_JWKS_FILE) or a URL (AUTH_JWKS_URL)" -}}
{{- end -}}
{{- if or $jwks.configMap $jwks.url -}}
{{- if not (trim $jwt.issuer) -}}
{{- fail "auth.jwt.issuer is required with a JWKS (auth.jwks.configMap or auth.jwks.url): the `iss` of the identity provider's tokens, e.g. https://idp.example.com/realms/fitness (AUTH_JWT_ISSUER)" -}}
{{- end -}}
{{- if not (trim $jwt.audience) -}}
{{- fail "auth.jwt.audience is required with a JWKS (auth.jwks.configMap or auth.jwks.url): the `aud` the identity provider puts in tokens for this API (AUTH_JWT_AUDIENCE)" -}}
{{- end -}}
{{- if gt (int $jwks.cacheMinSeconds) (int $jwks.cacheMaxSeconds) -}}
{{- fail "auth.jwks.cacheMinSeconds is above auth.jwks.cacheMaxSeconds" -}}
{{- end -}}
{{- else if or (trim $jwt.issuer) (trim $jwt.audience) -}}
{{- fail "auth.jwt.issuer/auth.jwt.audience are set but no JWKS is: set auth.jwks.configMap (a ConfigMap with the provider's JWKS) or auth.jwks.url" -}}
{{- end -}}
{{- end -}}

{{/* Where the JWKS ConfigMap is mounted (a directory, so the kubelet's updates reach the file). */}}
{{- define "ingest-api.jwksDir" -}}/etc/ingest-api/jwks{{- end -}}

{{/* The ConfigMap's settings: every variable of README.md's table that applies, but secrets. */}}
{{- define "ingest-api.configData" -}}
{{- $s := include "ingest-api.settings" . | fromYaml -}}
{{- $c := .Values.config -}}
INGEST_LISTEN_ADDR: "0.0.0.0:8080"
KAFKA_BOOTSTRAP_SERVERS: {{ $s.kafka.bootstrapServers | quote }}
{{- if not $s.schemaRegistry.urlFromSecret }}
SCHEMA_REGISTRY_URL: {{ $s.schemaRegistry.url | quote }}
{{- end }}
INGEST_TOPIC: {{ $s.kafka.topic | quote }}
RUST_LOG: {{ $c.rustLog | quote }}
LOG_FORMAT: {{ $c.logFormat | quote }}
INGEST_MAX_BODY_BYTES: {{ $c.maxBodyBytes | int64 | quote }}
INGEST_MAX_SAMPLES_PER_KIND: {{ $c.maxSamplesPerKind | int64 | quote }}
INGEST_MAX_SAMPLE_AGE_DAYS: {{ $c.maxSampleAgeDays | int64 | quote }}
INGEST_FUTURE_TOLERANCE_SECONDS: {{ $c.futureToleranceSeconds | int64 | quote }}
INGEST_DELIVERY_TIMEOUT_MS: {{ $c.deliveryTimeoutMs | int64 | quote }}
INGEST_PRODUCER_QUEUE_MAX_MESSAGES: {{ $c.producerQueueMaxMessages | int64 | quote }}
INGEST_MAX_CLOCK_SKEW_SECONDS: {{ $c.maxClockSkewSeconds | int64 | quote }}
INGEST_MAX_EVENT_BYTES: {{ $c.maxEventBytes | int64 | quote }}
INGEST_PRODUCER_COMPRESSION: {{ $c.producerCompression | quote }}
INGEST_PRODUCER_LINGER_MS: {{ $c.producerLingerMs | int64 | quote }}
INGEST_PRODUCER_BATCH_BYTES: {{ $c.producerBatchBytes | int64 | quote }}
INGEST_WORKERS: {{ $c.workers | int64 | quote }}
INGEST_ACCESS_LOG_EVERY: {{ $c.accessLogEvery | int64 | quote }}
INGEST_READ_POOL_SIZE: {{ $c.readPoolSize | int64 | quote }}
INGEST_READ_MAX_WAIT_MS: {{ $c.readMaxWaitMs | int64 | quote }}
INGEST_READ_MAX_DAYS: {{ $c.readMaxDays | int64 | quote }}
INGEST_READ_MAX_WAITERS: {{ $c.readMaxWaiters | int64 | quote }}
INGEST_READ_MAX_WAITERS_PER_USER: {{ $c.readMaxWaitersPerUser | int64 | quote }}
INGEST_EXPORT_MAX_CONCURRENT: {{ $c.exportMaxConcurrent | int64 | quote }}
{{- $auth := .Values.auth }}
AUTH_MAX_TOKEN_LIFETIME_SECONDS: {{ $auth.maxTokenLifetimeSeconds | int64 | quote }}
{{- if or $auth.jwks.configMap $auth.jwks.url }}
{{- if $auth.jwks.configMap }}
AUTH_JWKS_FILE: {{ printf "%s/%s" (include "ingest-api.jwksDir" .) $auth.jwks.configMapKey | quote }}
{{- else }}
AUTH_JWKS_URL: {{ $auth.jwks.url | quote }}
{{- end }}
AUTH_JWT_ISSUER: {{ $auth.jwt.issuer | quote }}
AUTH_JWT_AUDIENCE: {{ $auth.jwt.audience | quote }}
AUTH_JWT_ALGORITHMS: {{ join "," $auth.jwt.algorithms | quote }}
AUTH_JWKS_CACHE_MIN_SECONDS: {{ $auth.jwks.cacheMinSeconds | int64 | quote }}
AUTH_JWKS_CACHE_MAX_SECONDS: {{ $auth.jwks.cacheMaxSeconds | int64 | quote }}
AUTH_JWKS_REFETCH_INTERVAL_SECONDS: {{ $auth.jwks.refetchIntervalSeconds | int64 | quote }}
{{- end }}
{{- range $name := list "device" "user" "reads" }}
{{- $limit := get $.Values.rateLimit $name }}
{{ printf "INGEST_RATE_LIMIT_%s_PER_SECOND" (upper $name) }}: {{ include "ingest-api.envValue" $limit.perSecond | quote }}
{{ printf "INGEST_RATE_LIMIT_%s_BURST" (upper $name) }}: {{ $limit.burst | int64 | quote }}
{{- end }}
INGEST_RATE_LIMIT_MAX_KEYS: {{ .Values.rateLimit.maxKeys | int64 | quote }}
INGEST_RATE_LIMIT_SWEEP_SECONDS: {{ .Values.rateLimit.sweepSeconds | int64 | quote }}
{{- range $key, $value := $s.kafka.config }}
{{ printf "KAFKA_%s" ($key | upper | replace "." "_") }}: {{ include "ingest-api.envValue" $value | quote }}
{{- end }}
{{- end -}}

{{- /*
API versions chosen from what the cluster serves, as Bitnami's common chart does: Kubernetes 1.21
added policy/v1 PodDisruptionBudgets and 1.23 autoscaling/v2 HPAs; 1.25 and 1.26 removed the
beta ones. The version check also covers `helm template --kube-version`, whose API list is
Helm's built-in one whatever the version.
*/ -}}
{{- define "ingest-api.pdbApiVersion" -}}
{{- if and (.Capabilities.APIVersions.Has "policy/v1") (semverCompare ">=1.21-0" .Capabilities.KubeVersion.Version) -}}
policy/v1
{{- else -}}
policy/v1beta1
{{- end -}}
{{- end -}}

{{- define "ingest-api.hpaApiVersion" -}}
{{- if and (.Capabilities.APIVersions.Has "autoscaling/v2") (semverCompare ">=1.23-0" .Capabilities.KubeVersion.Version) -}}
autoscaling/v2
{{- else -}}
autoscaling/v2beta2
{{- end -}}
{{- end -}}
