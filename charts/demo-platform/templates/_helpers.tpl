{{/*
Chart name and version as used by the helm.sh/chart label.
*/}}
{{- define "demo-platform.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Object name for a component: the optional prefix plus the component name.
Call with (dict "root" $ "name" "api-gateway").
*/}}
{{- define "demo-platform.name" -}}
{{- printf "%s%s" .root.Values.namePrefix .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Selector labels: stable across upgrades, used by Services, PDBs and workloads.
Call with (dict "root" $ "name" "api-gateway").
*/}}
{{- define "demo-platform.selectorLabels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{/*
Common labels for every object of a component.
Call with (dict "root" $ "name" "api-gateway" "component" "gateway").
*/}}
{{- define "demo-platform.labels" -}}
{{ include "demo-platform.selectorLabels" . }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
app.kubernetes.io/part-of: {{ .root.Values.partOf }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ include "demo-platform.chart" .root }}
{{- end -}}

{{/*
Legacy labels (`app`, `version`) carried by some workloads only.
Call with a non-empty map of labels; renders one `key: "value"` per line.
*/}}
{{- define "demo-platform.legacyLabels" -}}
{{- $lines := list -}}
{{- range $key, $value := . -}}
{{- $lines = append $lines (printf "%s: %s" $key (quote $value)) -}}
{{- end -}}
{{- join "\n" $lines -}}
{{- end -}}

{{/*
Image reference for an application service.
Call with (dict "root" $ "name" "api-gateway" "svc" $svc).
*/}}
{{- define "demo-platform.image" -}}
{{- $image := .svc.image | default .name -}}
{{- $tag := .svc.tag | default .root.Values.image.tag -}}
{{- printf "%s/%s:%s" .root.Values.image.repository $image $tag -}}
{{- end -}}

{{/*
Name of the Secret holding DATABASE_URL for a consuming service.
*/}}
{{- define "demo-platform.dbSecretName" -}}
{{- printf "%s%s-db" .root.Values.namePrefix .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Name of the Secret holding the superuser credentials of a database.
*/}}
{{- define "demo-platform.dbAuthSecretName" -}}
{{- printf "%s%s-auth" .root.Values.namePrefix .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Connection string for a database entry.
Call with (dict "root" $ "name" "postgres-core" "db" $db).
*/}}
{{- define "demo-platform.databaseUrl" -}}
{{- printf "postgresql://%s:%s@%s:5432/%s" .db.user .db.password (include "demo-platform.name" (dict "root" .root "name" .name)) .db.database -}}
{{- end -}}

{{/*
Name of the shared ConfigMap.
*/}}
{{- define "demo-platform.configName" -}}
{{- include "demo-platform.name" (dict "root" . "name" "platform-config") -}}
{{- end -}}

{{/*
An HTTP probe. Call with (dict "probe" $probe "port" "http-or-number").
*/}}
{{- define "demo-platform.httpProbe" -}}
httpGet:
  path: {{ .probe.path }}
  port: {{ .port }}
{{- with .probe.initialDelaySeconds }}
initialDelaySeconds: {{ . }}
{{- end }}
periodSeconds: {{ .probe.periodSeconds | default 10 }}
timeoutSeconds: {{ .probe.timeoutSeconds | default 2 }}
failureThreshold: {{ .probe.failureThreshold | default 3 }}
{{- end -}}
