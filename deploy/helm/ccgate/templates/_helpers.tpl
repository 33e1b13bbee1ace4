{{- define "ccgate.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}{{ .Release.Name | trunc 63 | trimSuffix "-" }}{{- else -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "ccgate.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "ccgate.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "ccgate.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "ccgate.secretName" -}}
{{ .Values.secrets.existingSecret | default (printf "%s-keys" (include "ccgate.fullname" .)) }}
{{- end -}}

{{- define "ccgate.podSecurity" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "ccgate.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end -}}

{{/* Environment every ccgate container shares: settings, keys, Redis. */}}
{{- define "ccgate.env" -}}
envFrom:
  - configMapRef:
      name: {{ include "ccgate.fullname" . }}
  - secretRef:
      name: {{ include "ccgate.secretName" . }}
      optional: true
env:
  - name: REDIS_URL
{{- if .Values.redis.enabled }}
    value: {{ printf "redis://%s-redis:6379/0" (include "ccgate.fullname" .) | quote }}
{{- else if .Values.redis.existingSecret }}
    valueFrom:
      secretKeyRef:
        name: {{ .Values.redis.existingSecret }}
        key: {{ .Values.redis.existingSecretKey }}
{{- else }}
    value: {{ .Values.redis.url | quote }}
{{- end }}
  - name: REDIS_MODE
    value: {{ ternary "standalone" (.Values.redis.mode | default "standalone") .Values.redis.enabled | quote }}
{{- if .Values.redis.botUrl }}
  - name: BOT_REDIS_URL
    value: {{ .Values.redis.botUrl | quote }}
{{- else if and .Values.redis.existingSecret .Values.redis.botExistingSecretKey }}
  - name: BOT_REDIS_URL
    valueFrom:
      secretKeyRef:
        name: {{ .Values.redis.existingSecret }}
        key: {{ .Values.redis.botExistingSecretKey }}
{{- end }}
{{- end -}}
