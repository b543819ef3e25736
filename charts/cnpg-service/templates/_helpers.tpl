{{/*
Chart name, overridable with nameOverride.
*/}}
{{- define "cnpg-service.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Full object name: fullnameOverride, else the release name when it already
contains the chart name, else "<release>-<chart name>". Truncated to leave
room for the "-db-credentials" and "-db-rw" suffixes.
*/}}
{{- define "cnpg-service.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 45 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 45 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 45 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
helm.sh/chart label value.
*/}}
{{- define "cnpg-service.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Selector labels.
*/}}
{{- define "cnpg-service.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cnpg-service.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/*
Common labels.
*/}}
{{- define "cnpg-service.labels" -}}
{{ include "cnpg-service.selectorLabels" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ include "cnpg-service.chart" . }}
{{- end -}}

{{/*
Name of the CloudNativePG Cluster and of its credentials Secret.
*/}}
{{- define "cnpg-service.dbClusterName" -}}
{{- printf "%s-db" (include "cnpg-service.fullname" .) -}}
{{- end -}}
{{- define "cnpg-service.dbSecretName" -}}
{{- printf "%s-db-credentials" (include "cnpg-service.fullname" .) -}}
{{- end -}}

{{/*
Database name and owner with their defaults.
*/}}
{{- define "cnpg-service.dbName" -}}
{{- .Values.database.name | default .Chart.Name -}}
{{- end -}}
{{- define "cnpg-service.dbUser" -}}
{{- .Values.database.user | default "app" -}}
{{- end -}}
