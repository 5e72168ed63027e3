{{/*
The pod of the reconcile Job and CronJob: `apply --scope repositories`
as the controller role, through the same service account (IRSA) and
config as serve. It makes no IAM call, so the controller role's own
permissions suffice and no administrator is involved.
*/}}
{{- define "rise-registry.reconcilePod" -}}
metadata:
  labels:
    {{- include "rise-registry.selectorLabels" . | nindent 4 }}
    app.kubernetes.io/component: reconcile
spec:
  serviceAccountName: {{ include "rise-registry.serviceAccountName" . }}
  automountServiceAccountToken: false
  restartPolicy: Never
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- include "rise-registry.podSecurityContext" . | nindent 4 }}
  containers:
    - name: apply
      image: {{ include "rise-registry.image" . }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args: [--log-format, json, apply, --scope, repositories, --auto-approve]
      env:
        {{- include "rise-registry.env" . | nindent 8 }}
      {{- with .Values.envFrom }}
      envFrom:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      resources:
        {{- toYaml .Values.reconcile.resources | nindent 8 }}
      securityContext:
        {{- include "rise-registry.securityContext" . | nindent 8 }}
      volumeMounts:
        {{- include "rise-registry.volumeMounts" . | nindent 8 }}
  volumes:
    {{- include "rise-registry.volumes" . | nindent 4 }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{- define "rise-registry.reconcileEnabled" -}}
{{- /* One mechanism, never two: with the controller, serve reconciles. */}}
{{- if and .Values.reconcile.enabled (not .Values.controller.enabled) (eq (toString (dig "registry" "type" "" .Values.config)) "ecr") }}true{{ end }}
{{- end }}
