{{/* Names and labels. */}}
{{- define "rise-registry.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "rise-registry.fullname" -}}
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

{{- define "rise-registry.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rise-registry.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* serve's pods only: the reconcile jobs' pods are not behind the Service or the PDB. */}}
{{- define "rise-registry.serveSelectorLabels" -}}
{{ include "rise-registry.selectorLabels" . }}
app.kubernetes.io/component: serve
{{- end }}

{{- define "rise-registry.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "rise-registry.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "rise-registry.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "rise-registry.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* By digest when one is given (the tag is then ignored), else by tag. */}}
{{- define "rise-registry.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The port of an `IP:port` listen address, which must be literal here. */}}
{{- define "rise-registry.port" -}}
{{- $port := regexReplaceAll "^.*:" . "" }}
{{- if not (regexMatch "^[0-9]+$" $port) }}
{{- fail (printf "config.server listen addresses must be written as IP:port in the chart's values (the ports become container ports), not %q" .) }}
{{- end }}
{{- $port }}
{{- end }}

{{- define "rise-registry.ociToken" -}}
{{- if eq (toString (dig "registry" "type" "" .Values.config)) "oci-token" }}true{{ end }}
{{- end }}

{{/* The Secret's keys in use. */}}
{{- define "rise-registry.secretKeys" -}}
{{- $keys := list }}
{{- if .Values.secrets.hs256 }}{{ $keys = append $keys "hs256-secret" }}{{ end }}
{{- if .Values.secrets.tls }}{{ $keys = concat $keys (list "tls.crt" "tls.key") }}{{ end }}
{{- if include "rise-registry.ociToken" . }}{{ $keys = concat $keys (list "oci-token-key.pem" "oci-token-chain.pem") }}{{ end }}
{{- toJson $keys }}
{{- end }}

{{- define "rise-registry.secretName" -}}
{{- default (printf "%s-secrets" (include "rise-registry.fullname" .)) .Values.secrets.existingSecret }}
{{- end }}

{{/*
default.yaml: `config` with the secrets wired in as references, never as
values: the HS256 secret from the environment, key files from the
Secret's mount (RISE_SECRETS_DIR).
*/}}
{{- define "rise-registry.config" -}}
{{- $cfg := deepCopy (default dict .Values.config) }}
{{- $auth := default dict $cfg.auth }}
{{- $server := default dict $cfg.server }}
{{- $registry := default dict $cfg.registry }}
{{- if not $registry.type }}
{{- fail "config.registry is required: the registry serve issues credentials for, with its `type` (values.yaml has an ECR example; docs/configuration.md every key)" }}
{{- end }}
{{- if not (or $auth.issuer $auth.issuers) }}
{{- fail "config.auth.issuer is required (or config.auth.issuers): who signs the callers' tokens, with auth.jwks_url or secrets.hs256 for its keys (docs/configuration.md)" }}
{{- end }}
{{- if hasKey $auth "hs256_secret" }}
{{- fail "config.auth.hs256_secret would put the secret in a ConfigMap: set secrets.hs256 and give it in a Secret (docs/kubernetes.md)" }}
{{- end }}
{{- if .Values.secrets.hs256 }}
{{- $_ := set $auth "hs256_secret" "${RISE_JWT_SECRET}" }}
{{- end }}
{{- if .Values.secrets.tls }}
{{- if hasKey $server "tls" }}
{{- fail "config.server.tls is set by the chart from the Secret when secrets.tls is true: leave it out" }}
{{- end }}
{{- $_ := set $server "tls" (dict "cert_file" "${RISE_SECRETS_DIR}/tls.crt" "key_file" "${RISE_SECRETS_DIR}/tls.key") }}
{{- end }}
{{- if include "rise-registry.ociToken" . }}
{{- $_ := set $registry "signing_key_file" "${RISE_SECRETS_DIR}/oci-token-key.pem" }}
{{- $_ := set $registry "certificate_chain_file" "${RISE_SECRETS_DIR}/oci-token-chain.pem" }}
{{- end }}
{{- if or (hasKey $cfg "store") (hasKey $cfg "controller") }}
{{- fail "config.store and config.controller are set by the chart: use the values store.existingSecret and controller.enabled (docs/kubernetes.md)" }}
{{- end }}
{{- if .Values.store.existingSecret }}
{{- $_ := set $cfg "store" (dict "url" "${RISE_STORE_URL}") }}
{{- end }}
{{- if .Values.controller.enabled }}
{{- if not .Values.store.existingSecret }}
{{- fail "controller.enabled needs store.existingSecret: the controller's lease lives in the project store (docs/kubernetes.md)" }}
{{- end }}
{{- $_ := set $cfg "controller" (dict "enabled" true "interval_seconds" (int .Values.controller.intervalSeconds) "lease_seconds" (int .Values.controller.leaseSeconds)) }}
{{- end }}
{{- $_ := set $cfg "auth" $auth }}
{{- $_ := set $cfg "server" $server }}
{{- $_ := set $cfg "registry" $registry }}
{{- toYaml $cfg }}
{{- end }}

{{/*
What serve reads only at start (docs/serve.md, "Reloading"): a change here
rolls the pods through the checksum/config annotation. Projects and access
rules are not in it: serve reloads them from the mounted ConfigMap.
*/}}
{{- define "rise-registry.restartChecksum" -}}
{{- $restart := dict "runMode" .Values.runMode "server" (default dict .Values.config.server) "registry" (default dict .Values.config.registry) "secrets" (omit .Values.secrets "values") "env" .Values.env "envFrom" .Values.envFrom }}
{{- toJson $restart | sha256sum }}
{{- end }}

{{/* Environment and mounts shared by serve and the reconcile jobs. */}}
{{- define "rise-registry.env" -}}
- name: RISE_CONFIG_DIR
  value: /etc/rise-registry
- name: RISE_CONFIG_RUN_MODE
  value: {{ .Values.runMode | quote }}
- name: RISE_SECRETS_DIR
  value: {{ .Values.secrets.mountPath | quote }}
{{- if .Values.secrets.hs256 }}
- name: RISE_JWT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "rise-registry.secretName" . }}
      key: hs256-secret
{{- end }}
{{- if .Values.store.existingSecret }}
- name: RISE_STORE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.store.existingSecret | quote }}
      key: {{ .Values.store.key | quote }}
{{- end }}
{{- with .Values.env }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "rise-registry.volumeMounts" -}}
- name: config
  mountPath: /etc/rise-registry
  readOnly: true
{{- if ne (include "rise-registry.secretKeys" .) "[]" }}
- name: secrets
  mountPath: {{ .Values.secrets.mountPath }}
  readOnly: true
{{- end }}
{{- with .Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "rise-registry.volumes" -}}
# A directory mount (no subPath), so an updated ConfigMap reaches the pod
# and serve reloads it.
- name: config
  configMap:
    name: {{ include "rise-registry.fullname" . }}
{{- $keys := fromJsonArray (include "rise-registry.secretKeys" .) }}
{{- if $keys }}
- name: secrets
  secret:
    secretName: {{ include "rise-registry.secretName" . }}
    defaultMode: 0440
    items:
{{- range $keys }}
      - key: {{ . }}
        path: {{ . }}
{{- end }}
{{- end }}
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "rise-registry.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "rise-registry.securityContext" -}}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
{{- end }}

{{/*
Whether more than one serve replica can exist: only then is a
PodDisruptionBudget of `minAvailable` useful (with one replica it blocks
every node drain).
*/}}
{{- define "rise-registry.multiReplica" -}}
{{- $replicas := ternary .Values.autoscaling.minReplicas .Values.replicaCount .Values.autoscaling.enabled }}
{{- if gt (int $replicas) 1 }}true{{ end }}
{{- end }}

{{/* The label matchers of this release's series in Prometheus. */}}
{{- define "rise-registry.alertSelector" -}}
{{- default (printf "job=%q,namespace=%q" (include "rise-registry.fullname" .) .Release.Namespace) .Values.prometheusRule.selector }}
{{- end }}

{{/* An alert's runbook: a section of docs/troubleshooting.md. */}}
{{- define "rise-registry.runbook" -}}
{{- printf "%s#%s" (default "docs/troubleshooting.md" .root.Values.prometheusRule.runbookBaseUrl) .anchor }}
{{- end }}

{{/*
The checksum of the secrets serve uses, which it reads only at start: a
change rolls the pods. The chart's own Secret from the values; an existing
Secret as the cluster holds it now (`lookup`: at `helm install` and
`helm upgrade`; `helm template` and `--dry-run` see no cluster, and then
nothing is written).
*/}}
{{- define "rise-registry.secretChecksum" -}}
{{- $keys := fromJsonArray (include "rise-registry.secretKeys" .) }}
{{- if $keys }}
{{- if not .Values.secrets.existingSecret }}
{{- toJson .Values.secrets.values | sha256sum }}
{{- else }}
{{- $live := lookup "v1" "Secret" .Release.Namespace .Values.secrets.existingSecret }}
{{- if and $live $live.data }}
{{- $used := dict }}
{{- range $keys }}{{ $_ := set $used . (get $live.data .) }}{{ end }}
{{- toJson $used | sha256sum }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{- define "rise-registry.storeSecretChecksum" -}}
{{- with .Values.store.existingSecret }}
{{- $live := lookup "v1" "Secret" $.Release.Namespace . }}
{{- if and $live $live.data }}
{{- get $live.data $.Values.store.key | sha256sum }}
{{- end }}
{{- end }}
{{- end }}
