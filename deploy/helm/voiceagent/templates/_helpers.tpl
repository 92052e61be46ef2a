{{/* Names and labels shared by the templates. */}}

{{- define "voiceagent.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "voiceagent.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "voiceagent.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "voiceagent.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels of one component ("media" or "worker"): call with (list . "media"). */}}
{{- define "voiceagent.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "voiceagent.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "voiceagent.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "voiceagent.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "voiceagent.secretName" -}}
{{- if .Values.existingSecret }}
{{- .Values.existingSecret }}
{{- else }}
{{- include "voiceagent.fullname" . }}
{{- end }}
{{- end }}

{{/* Both ConfigMap and Secret go to every voiceagent container. */}}
{{- define "voiceagent.envFrom" -}}
- configMapRef:
    name: {{ include "voiceagent.fullname" . }}
- secretRef:
    name: {{ include "voiceagent.secretName" . }}
{{- end }}

{{/* Without a database URL every media pod would keep its own SQLite call log: refuse to render. */}}
{{- define "voiceagent.checkDatabase" -}}
{{- if and (not .Values.existingSecret) (not (index .Values.secret.env "VOICEAGENT_DATABASE_URL")) }}
{{- fail "set secret.env.VOICEAGENT_DATABASE_URL (postgresql+asyncpg://...) or existingSecret" }}
{{- end }}
{{- end }}

{{- define "voiceagent.image" -}}
{{- $root := index . 0 -}}
{{- $image := index . 1 }}
{{- printf "%s:%s" $image.repository (default $root.Chart.AppVersion $image.tag) }}
{{- end }}
