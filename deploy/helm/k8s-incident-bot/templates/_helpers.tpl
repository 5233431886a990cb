{{/* Names and labels shared by every template. */}}

{{- define "bot.name" -}}
{{- .Chart.Name -}}
{{- end -}}

{{/* The release's object name prefix: the release name, with the chart name added unless it is already in it. */}}
{{- define "bot.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "bot.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "bot.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: k8s-incident-bot
{{- end -}}

{{/* Selector labels of one component: include "bot.selector" (list . "bot") */}}
{{- define "bot.selector" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "bot.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "bot.serviceAccountName" -}}
{{- include "bot.fullname" . -}}
{{- end -}}

{{- define "bot.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "bot.secretName" -}}
{{- default (include "bot.fullname" .) .Values.slack.existingSecret -}}
{{- end -}}

{{- define "bot.redisHost" -}}
{{- printf "%s-redis" (include "bot.fullname" .) -}}
{{- end -}}

{{- define "bot.redisPort" -}}
{{- if eq .Values.redis.mode "bundled" -}}6379{{- else -}}{{ .Values.redis.external.port }}{{- end -}}
{{- end -}}

{{/*
Checks the schema cannot express with a message a person can act on; called from the ConfigMap, which
every install renders. They fail `helm install`/`template` naming the value to set.
*/}}
{{- define "bot.validate" -}}
{{- $slack := .Values.slack -}}
{{- if eq .Values.mode "agent" -}}
{{- if not .Values.agent.cluster -}}
{{- fail "mode=agent needs agent.cluster: the cluster's name in the central release's CLUSTERS_FILE" -}}
{{- end -}}
{{- if eq .Values.redis.mode "bundled" -}}
{{- fail "mode=agent needs the central release's Redis: set redis.mode=external (redis.external.url or existingSecret) or redis.mode=sentinel" -}}
{{- end -}}
{{- if or $slack.botToken $slack.signingSecret $slack.appToken $slack.existingSecret -}}
{{- fail "mode=agent never holds Slack credentials (its results go through the outbox in Redis): leave slack.* empty" -}}
{{- end -}}
{{- else if not $slack.existingSecret -}}
{{- if not $slack.botToken -}}
{{- fail "slack: set slack.existingSecret (a Secret with SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET) or slack.botToken and slack.signingSecret; slack.botToken is empty" -}}
{{- end -}}
{{- if not $slack.signingSecret -}}
{{- fail "slack: set slack.existingSecret or slack.signingSecret; slack.signingSecret is empty" -}}
{{- end -}}
{{- if and (eq $slack.mode "socket") (not $slack.appToken) -}}
{{- fail "slack.mode=socket needs slack.appToken (the xapp-… app-level token) or slack.existingSecret holding SLACK_APP_TOKEN" -}}
{{- end -}}
{{- end -}}
{{- if and (ne .Values.mode "agent") (not $slack.stakeholderChannel) -}}
{{- fail "slack.stakeholderChannel is required: the channel ID (C…) for announcements and status updates" -}}
{{- end -}}
{{- if and (eq .Values.cluster.accessMode "impersonation") (empty .Values.cluster.impersonate) -}}
{{- fail "cluster.accessMode=impersonation needs cluster.impersonate: map each Slack user ID to a Kubernetes user (or {user, groups})" -}}
{{- end -}}
{{- if and (eq .Values.redis.mode "sentinel") (empty .Values.redis.sentinel.addresses) -}}
{{- fail "redis.mode=sentinel needs redis.sentinel.addresses (host:port of each sentinel)" -}}
{{- end -}}
{{- if and (eq .Values.redis.mode "external") (not .Values.redis.external.url) (not .Values.redis.external.existingSecret) -}}
{{- fail "redis.mode=external needs redis.external.url or redis.external.existingSecret" -}}
{{- end -}}
{{- end -}}

{{/* The users and the groups cluster.impersonate maps to (sorted, unique): the only ones the bot may impersonate. */}}
{{- define "bot.impersonatedUsers" -}}
{{- $users := list -}}
{{- range $slack, $target := .Values.cluster.impersonate -}}
{{- if kindIs "string" $target -}}{{- $users = append $users $target -}}{{- else -}}{{- $users = append $users $target.user -}}{{- end -}}
{{- end -}}
{{- $users | uniq | sortAlpha | toJson -}}
{{- end -}}

{{- define "bot.impersonatedGroups" -}}
{{- $groups := list -}}
{{- range $slack, $target := .Values.cluster.impersonate -}}
{{- if kindIs "map" $target -}}{{- range $target.groups | default list -}}{{- $groups = append $groups . -}}{{- end -}}{{- end -}}
{{- end -}}
{{- $groups | uniq | sortAlpha | toJson -}}
{{- end -}}

{{/* Pod spec parts shared by the bot and the workers. */}}
{{- define "bot.env" -}}
envFrom:
  - configMapRef:
      name: {{ include "bot.fullname" . }}
  {{- if ne .Values.mode "agent" }}
  - secretRef:
      name: {{ include "bot.secretName" . }}
  {{- end }}
  {{- with .Values.extraEnvFrom }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- $urlSecret := and (eq .Values.redis.mode "external") .Values.redis.external.existingSecret -}}
{{- $sentinelSecret := and (eq .Values.redis.mode "sentinel") .Values.redis.sentinel.existingSecret -}}
{{- if or $urlSecret $sentinelSecret .Values.extraEnv }}
env:
  {{- if $urlSecret }}
  - name: REDIS_URL
    valueFrom:
      secretKeyRef:
        name: {{ .Values.redis.external.existingSecret }}
        key: {{ .Values.redis.external.existingSecretKey }}
  {{- end }}
  {{- if $sentinelSecret }}
  {{- range $key := list "REDIS_PASSWORD" "REDIS_SENTINEL_PASSWORD" }}
  - name: {{ $key }}
    valueFrom:
      secretKeyRef:
        name: {{ $sentinelSecret }}
        key: {{ $key }}
        optional: true
  {{- end }}
  {{- end }}
  {{- with .Values.extraEnv }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}
{{- end -}}
