{{- /* The subcharts' full names, as their own helpers make them (for NOTES.txt and the alerts). */ -}}
{{- define "fitness.serviceName" -}}
{{- $v := index .ctx.Values .chart -}}
{{- $name := $v.nameOverride | default .chart -}}
{{- $v.fullnameOverride | default (ternary .ctx.Release.Name (printf "%s-%s" .ctx.Release.Name $name) (contains $name .ctx.Release.Name)) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "fitness.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: fitness
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: fitness
{{- end -}}
