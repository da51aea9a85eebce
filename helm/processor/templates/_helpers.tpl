{{/* Chart name, at most 63 characters. */}}
{{- define "processor.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name of the resources: release name and chart name, at most 63 characters. */}}
{{- define "processor.fullname" -}}
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

{{/* Labels of every resource but the component. */}}
{{- define "processor.metaLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "processor.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: fitness
{{- end -}}

{{- define "processor.selectorLabels" -}}
app.kubernetes.io/name: {{ include "processor.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: consumer
{{- end -}}

{{- define "processor.labels" -}}
{{ include "processor.metaLabels" . }}
app.kubernetes.io/component: consumer
{{- end -}}

{{/*
The settings the umbrella chart shares between the services (kafka, schemaRegistry, secrets,
image tag and pull policy): this chart's values with global.fitness laid over them. A global
value applies when it is set (not empty, zero or false).
*/}}
{{- define "processor.settings" -}}
{{- $global := get (.Values.global | default dict) "fitness" | default dict -}}
{{- $own := dict "kafka" .Values.kafka "schemaRegistry" .Values.schemaRegistry "secrets" .Values.secrets "image" (pick .Values.image "tag" "digest" "pullPolicy") -}}
{{- toYaml (mergeOverwrite (deepCopy $own) (deepCopy $global)) -}}
{{- end -}}

{{- define "processor.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "processor.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "processor.secretName" -}}
{{- $s := include "processor.settings" . | fromYaml -}}
{{- default (include "processor.fullname" .) $s.secrets.existingSecret -}}
{{- end -}}

{{/* The Secret the hook Jobs read: at pre-install a chart-made Secret does not exist yet, so
with secrets.create they read a copy that is itself a hook. */}}
{{- define "processor.hookSecretName" -}}
{{- $s := include "processor.settings" . | fromYaml -}}
{{- if $s.secrets.create -}}
{{- printf "%s-hooks" (include "processor.fullname" . | trunc 57 | trimSuffix "-") -}}
{{- else -}}
{{- $s.secrets.existingSecret -}}
{{- end -}}
{{- end -}}

{{- define "processor.image" -}}
{{- $s := include "processor.settings" . | fromYaml -}}
{{- if $s.image.digest -}}
{{- printf "%s@%s" .Values.image.repository $s.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion $s.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* A value as an environment variable's text: whole numbers without an exponent. */}}
{{- define "processor.envValue" -}}
{{- if kindIs "float64" . -}}{{- if eq (floor .) . -}}{{- int64 . -}}{{- else -}}{{- . -}}{{- end -}}{{- else -}}{{- . -}}{{- end -}}
{{- end -}}

{{/* The ConfigMap's settings: every variable of README.md's table that applies, but secrets. */}}
{{- define "processor.configData" -}}
{{- $s := include "processor.settings" . | fromYaml -}}
{{- $c := .Values.config -}}
PROCESSOR_OPS_ADDR: "0.0.0.0:9090"
KAFKA_BOOTSTRAP_SERVERS: {{ $s.kafka.bootstrapServers | quote }}
{{- if not $s.schemaRegistry.urlFromSecret }}
SCHEMA_REGISTRY_URL: {{ $s.schemaRegistry.url | quote }}
{{- end }}
PROCESSOR_TOPIC: {{ $s.kafka.topic | quote }}
PROCESSOR_DLQ_TOPIC: {{ $s.kafka.dlqTopic | quote }}
PROCESSOR_GROUP_ID: {{ $s.kafka.groupId | quote }}
PROCESSOR_TOPIC_PARTITIONS: {{ $s.kafka.partitions | int64 | quote }}
PROCESSOR_TOPIC_REPLICATION: {{ .Values.topics.replicationFactor | int64 | quote }}
PROCESSOR_TOPIC_MIN_INSYNC_REPLICAS: {{ .Values.topics.minInsyncReplicas | int64 | quote }}
PROCESSOR_TOPIC_RETENTION_MS: {{ .Values.topics.retentionMs | int64 | quote }}
RUST_LOG: {{ $c.rustLog | quote }}
LOG_FORMAT: {{ $c.logFormat | quote }}
PROCESSOR_DB_POOL_SIZE: {{ $c.dbPoolSize | int64 | quote }}
PROCESSOR_BATCH_MAX_EVENTS: {{ $c.batchMaxEvents | int64 | quote }}
PROCESSOR_BATCH_MAX_WAIT_MS: {{ $c.batchMaxWaitMs | int64 | quote }}
PROCESSOR_CACHE_BUDGET_MB: {{ $c.cacheBudgetMb | int64 | quote }}
PROCESSOR_MAX_SERIES_DAYS: {{ $c.maxSeriesDays | int64 | quote }}
PROCESSOR_RECOMPUTE_ON_START: {{ .Values.recompute.onStart | toString | quote }}
{{- range $key, $value := $s.kafka.config }}
{{ printf "KAFKA_%s" ($key | upper | replace "." "_") }}: {{ include "processor.envValue" $value | quote }}
{{- end }}
{{- end -}}

{{/* Environment variables from the Secret. Argument: dict "ctx" . "secret" NAME "database" BOOL "kafka" BOOL "registry" BOOL */}}
{{- define "processor.secretEnv" -}}
{{- $s := include "processor.settings" .ctx | fromYaml -}}
{{- if .database }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ $s.secrets.keys.databaseUrl }}
{{- end }}
{{- if and .kafka $s.kafka.sasl.enabled }}
- name: KAFKA_SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ $s.secrets.keys.kafkaSaslUsername }}
- name: KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ $s.secrets.keys.kafkaSaslPassword }}
{{- end }}
{{- if and .registry $s.schemaRegistry.urlFromSecret }}
- name: SCHEMA_REGISTRY_URL
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ $s.secrets.keys.schemaRegistryUrl }}
{{- end }}
{{- if and .registry $s.schemaRegistry.auth.enabled }}
- name: SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO
  valueFrom:
    secretKeyRef:
      name: {{ $s.schemaRegistry.auth.existingSecret | default .secret }}
      key: {{ $s.schemaRegistry.auth.key }}
{{- end }}
{{- end -}}

{{/* The Secret's data with secrets.create. */}}
{{- define "processor.secretData" -}}
{{- $s := include "processor.settings" . | fromYaml -}}
{{ $s.secrets.keys.databaseUrl }}: {{ $s.secrets.databaseUrl | b64enc | quote }}
{{- if $s.kafka.sasl.enabled }}
{{ $s.secrets.keys.kafkaSaslUsername }}: {{ $s.secrets.kafkaSaslUsername | b64enc | quote }}
{{ $s.secrets.keys.kafkaSaslPassword }}: {{ $s.secrets.kafkaSaslPassword | b64enc | quote }}
{{- end }}
{{- if $s.schemaRegistry.urlFromSecret }}
{{ $s.secrets.keys.schemaRegistryUrl }}: {{ $s.secrets.schemaRegistryUrl | b64enc | quote }}
{{- end }}
{{- if and $s.schemaRegistry.auth.enabled (not $s.schemaRegistry.auth.existingSecret) }}
{{ $s.schemaRegistry.auth.key }}: {{ $s.secrets.schemaRegistryUserInfo | b64enc | quote }}
{{- end }}
{{- end -}}

{{/* The pod settings the Deployment and the hook Jobs share. */}}
{{- define "processor.podCommon" -}}
automountServiceAccountToken: false
# Service links would add variables such as KAFKA_PORT for a Service named kafka, and every
# KAFKA_* variable becomes a librdkafka property.
enableServiceLinks: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumes:
  - name: tmp
    emptyDir:
      sizeLimit: 64Mi
{{- end -}}

{{/* KEDA's SASL mode: keda.sasl, or derived from kafka.config's sasl.mechanism. */}}
{{- define "processor.kedaSasl" -}}
{{- $s := include "processor.settings" . | fromYaml -}}
{{- if .Values.keda.sasl -}}
{{- .Values.keda.sasl -}}
{{- else if $s.kafka.sasl.enabled -}}
{{- $mechanism := get $s.kafka.config "sasl.mechanism" | default "PLAIN" | upper -}}
{{- $modes := dict "PLAIN" "plaintext" "SCRAM-SHA-256" "scram_sha256" "SCRAM-SHA-512" "scram_sha512" -}}
{{- if not (hasKey $modes $mechanism) -}}
{{- fail (printf "keda.sasl: cannot derive KEDA's SASL mode from sasl.mechanism %s; set keda.sasl" $mechanism) -}}
{{- end -}}
{{- get $modes $mechanism -}}
{{- end -}}
{{- end -}}

{{/* KEDA's TLS: keda.tls, or "enable" when kafka.config's security.protocol uses SSL. */}}
{{- define "processor.kedaTls" -}}
{{- $s := include "processor.settings" . | fromYaml -}}
{{- if .Values.keda.tls -}}
{{- .Values.keda.tls -}}
{{- else if has (get $s.kafka.config "security.protocol" | default "" | upper) (list "SSL" "SASL_SSL") -}}
enable
{{- end -}}
{{- end -}}

{{/* Fails the rendering, with what to do, when the values cannot work. */}}
{{- define "processor.validate" -}}
{{- $s := include "processor.settings" . | fromYaml -}}
{{- $partitions := int $s.kafka.partitions -}}
{{- if not $s.kafka.bootstrapServers -}}
{{- fail "kafka.bootstrapServers is required: the Kafka bootstrap servers, e.g. fitness-kafka-bootstrap.kafka:9093 (in the fitness chart: global.fitness.kafka.bootstrapServers)" -}}
{{- end -}}
{{- if not (or $s.schemaRegistry.url $s.schemaRegistry.urlFromSecret) -}}
{{- fail "schemaRegistry.url is required: the Confluent-compatible Schema Registry, e.g. http://schema-registry.kafka:8081 (or set schemaRegistry.urlFromSecret to read it, with credentials, from the Secret)" -}}
{{- end -}}
{{- if and $s.secrets.existingSecret $s.secrets.create -}}
{{- fail "secrets.existingSecret and secrets.create are both set: use one (existingSecret in production)" -}}
{{- end -}}
{{- if not (or $s.secrets.existingSecret $s.secrets.create) -}}
{{- fail (printf "secrets.existingSecret is required: the name of a Secret with the key %s (see README.md, \"Secrets\"). For a test or a demo only, set secrets.create=true with secrets.databaseUrl instead (the value is then kept in Helm's release history)." $s.secrets.keys.databaseUrl) -}}
{{- end -}}
{{- if $s.secrets.create -}}
{{- $_ := required "secrets.databaseUrl is required with secrets.create=true" $s.secrets.databaseUrl -}}
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
{{- if lt $partitions 1 -}}
{{- fail "kafka.partitions must be at least 1" -}}
{{- end -}}
{{- if gt (int .Values.topics.minInsyncReplicas) (int .Values.topics.replicationFactor) -}}
{{- fail (printf "topics.minInsyncReplicas (%d) must be at most topics.replicationFactor (%d): a write could never be acknowledged" (int .Values.topics.minInsyncReplicas) (int .Values.topics.replicationFactor)) -}}
{{- end -}}
{{- if .Values.keda.enabled -}}
{{- if gt (int .Values.keda.maxReplicaCount) $partitions -}}
{{- fail (printf "keda.maxReplicaCount (%d) is above kafka.partitions (%d): a consumer beyond the partition count gets no partition. Lower it, or create the topic with more partitions and raise kafka.partitions." (int .Values.keda.maxReplicaCount) $partitions) -}}
{{- end -}}
{{- if gt (int .Values.keda.minReplicaCount) (int .Values.keda.maxReplicaCount) -}}
{{- fail "keda.minReplicaCount is above keda.maxReplicaCount" -}}
{{- end -}}
{{- $_ := include "processor.kedaSasl" . -}}
{{- else if .Values.autoscaling.enabled -}}
{{- if gt (int .Values.autoscaling.maxReplicas) $partitions -}}
{{- fail (printf "autoscaling.maxReplicas (%d) is above kafka.partitions (%d): a consumer beyond the partition count gets no partition. Lower it, or create the topic with more partitions and raise kafka.partitions." (int .Values.autoscaling.maxReplicas) $partitions) -}}
{{- end -}}
{{- if gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas) -}}
{{- fail "autoscaling.minReplicas is above autoscaling.maxReplicas" -}}
{{- end -}}
{{- if not (dig "requests" "cpu" "" .Values.resources) -}}
{{- fail "autoscaling.enabled needs resources.requests.cpu: the HPA scales on CPU utilisation of the request" -}}
{{- end -}}
{{- else if gt (int .Values.replicaCount) $partitions -}}
{{- fail (printf "replicaCount (%d) is above kafka.partitions (%d): a consumer beyond the partition count gets no partition." (int .Values.replicaCount) $partitions) -}}
{{- end -}}
{{- end -}}

{{- /*
API versions chosen from what the cluster serves, as Bitnami's common chart does: Kubernetes 1.21
added policy/v1 PodDisruptionBudgets and 1.23 autoscaling/v2 HPAs; 1.25 and 1.26 removed the
beta ones. The version check also covers `helm template --kube-version`, whose API list is
Helm's built-in one whatever the version.
*/ -}}
{{- define "processor.pdbApiVersion" -}}
{{- if and (.Capabilities.APIVersions.Has "policy/v1") (semverCompare ">=1.21-0" .Capabilities.KubeVersion.Version) -}}
policy/v1
{{- else -}}
policy/v1beta1
{{- end -}}
{{- end -}}

{{- define "processor.hpaApiVersion" -}}
{{- if and (.Capabilities.APIVersions.Has "autoscaling/v2") (semverCompare ">=1.23-0" .Capabilities.KubeVersion.Version) -}}
autoscaling/v2
{{- else -}}
autoscaling/v2beta2
{{- end -}}
{{- end -}}
