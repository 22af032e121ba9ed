{{/* Names ------------------------------------------------------------------------------ */}}

{{- define "churnops.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Resource-name prefix: the release name if it already contains the chart name. */}}
{{- define "churnops.fullname" -}}
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

{{- define "churnops.mlflow.fullname" -}}
{{- printf "%s-mlflow" (include "churnops.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "churnops.postgresql.fullname" -}}
{{- printf "%s-postgresql" (include "churnops.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "churnops.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels -----------------------------------------------------------------------------
Standard labels for every object. Call with (dict "ctx" $ "component" "mlflow").
*/}}
{{- define "churnops.labels" -}}
helm.sh/chart: {{ include "churnops.chart" .ctx }}
{{ include "churnops.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: churnops
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "churnops.selectorLabels" -}}
app.kubernetes.io/name: {{ include "churnops.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- if .component }}
app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- end -}}

{{/* Images -----------------------------------------------------------------------------
Call with (dict "ctx" $ "image" .Values.images.components). Refuses "latest" and empty tags.
*/}}
{{- define "churnops.image" -}}
{{- $tag := default .ctx.Chart.AppVersion .image.tag | toString -}}
{{- if or (eq $tag "") (eq $tag "latest") -}}
{{- fail (printf "image %s: a pinned tag is required (got %q)" .image.repository $tag) -}}
{{- end -}}
{{- $registry := .ctx.Values.images.registry | default "" | trimSuffix "/" -}}
{{- if $registry -}}
{{- printf "%s/%s:%s" $registry .image.repository $tag -}}
{{- else -}}
{{- printf "%s:%s" .image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "churnops.imagePullSecrets" -}}
{{- with .Values.images.pullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Security contexts (restricted Pod Security Standard) --------------------------------- */}}
{{- define "churnops.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroup: {{ .Values.securityContext.fsGroup }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "churnops.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* MLflow endpoints -------------------------------------------------------------------- */}}
{{- define "churnops.mlflow.host" -}}
{{- printf "%s.%s.svc.cluster.local" (include "churnops.mlflow.fullname" .) .Release.Namespace -}}
{{- end -}}

{{- define "churnops.mlflow.url" -}}
{{- printf "http://%s:%d" (include "churnops.mlflow.host" .) (int .Values.mlflow.port) -}}
{{- end -}}

{{/* Comma-separated Host headers the tracking server accepts. */}}
{{- define "churnops.mlflow.allowedHosts" -}}
{{- $svc := include "churnops.mlflow.fullname" . -}}
{{- $ns := .Release.Namespace -}}
{{- $port := int .Values.mlflow.port -}}
{{- $hosts := list "localhost" (printf "localhost:%d" $port) "127.0.0.1" (printf "127.0.0.1:%d" $port) $svc (printf "%s:%d" $svc $port) (printf "%s.%s" $svc $ns) (printf "%s.%s:%d" $svc $ns $port) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc:%d" $svc $ns $port) (printf "%s.%s.svc.cluster.local" $svc $ns) (printf "%s.%s.svc.cluster.local:%d" $svc $ns $port) -}}
{{- if .Values.mlflow.ingress.enabled -}}
{{- $hosts = append $hosts .Values.mlflow.ingress.host -}}
{{- end -}}
{{- $hosts = concat $hosts .Values.mlflow.extraAllowedHosts -}}
{{- join "," $hosts -}}
{{- end -}}

{{/* Name of the Secret and key holding MLflow's backend-store URI. */}}
{{- define "churnops.mlflow.backendSecretName" -}}
{{- if .Values.postgresql.enabled -}}
{{- include "churnops.postgresql.fullname" . -}}
{{- else if .Values.mlflow.backendStore.existingSecret -}}
{{- .Values.mlflow.backendStore.existingSecret -}}
{{- else -}}
{{- fail "postgresql.enabled=false needs mlflow.backendStore.existingSecret (a Secret holding the database URI)" -}}
{{- end -}}
{{- end -}}

{{- define "churnops.mlflow.backendSecretKey" -}}
{{- if .Values.postgresql.enabled -}}uri{{- else -}}{{ .Values.mlflow.backendStore.uriKey }}{{- end -}}
{{- end -}}

{{- define "churnops.mlflow.artifactsDestination" -}}
{{- default "/mlflow/artifacts" .Values.mlflow.artifacts.destination -}}
{{- end -}}

{{/* Environment shared by the tracking server and its migration Job. */}}
{{- define "churnops.mlflow.env" -}}
- name: MLFLOW_BACKEND_STORE_URI
  valueFrom:
    secretKeyRef:
      name: {{ include "churnops.mlflow.backendSecretName" . }}
      key: {{ include "churnops.mlflow.backendSecretKey" . }}
- name: HOME
  value: /tmp
- name: PYTHONDONTWRITEBYTECODE
  value: "1"
{{- if .Values.mlflow.artifacts.s3EndpointUrl }}
- name: MLFLOW_S3_ENDPOINT_URL
  value: {{ .Values.mlflow.artifacts.s3EndpointUrl | quote }}
{{- end }}
{{- if .Values.mlflow.auth.enabled }}
- name: MLFLOW_AUTH_CONFIG_PATH
  value: /etc/mlflow/auth/basic_auth.ini
{{- end }}
{{- end -}}

{{- define "churnops.predictor.modelDir" -}}/mnt/models{{- end -}}

{{/* KFP clients: the drift alert receiver and the schedule Job ------------------------- */}}
{{- define "churnops.alertReceiver.fullname" -}}
{{- printf "%s-alert-receiver" (include "churnops.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "churnops.alertReceiver.secretName" -}}
{{- default (include "churnops.alertReceiver.fullname" .) .Values.alertReceiver.existingSecret -}}
{{- end -}}

{{/* TCP port of pipelines.kfp.host (explicit, else 443 for https, 80 for http). */}}
{{- define "churnops.kfp.port" -}}
{{- $host := regexReplaceAll "^[a-zA-Z]+://([^/]+).*$" .Values.pipelines.kfp.host "${1}" -}}
{{- $port := regexFind ":[0-9]+$" $host | trimPrefix ":" -}}
{{- if $port -}}{{ $port }}{{- else if hasPrefix "https:" .Values.pipelines.kfp.host -}}443{{- else -}}80{{- end -}}
{{- end -}}

{{/* Environment of a `churnops` process that starts KFP runs. */}}
{{- define "churnops.kfp.env" -}}
- name: KFP_HOST
  value: {{ .Values.pipelines.kfp.host | quote }}
# The runs' pods run as churnops' own ServiceAccount (rbac.yaml), not KFP's shared one.
- name: KFP_SERVICE_ACCOUNT
  value: {{ .Values.pipelineRunner.serviceAccountName | quote }}
{{- with .Values.pipelines.kfp.namespace }}
- name: KFP_NAMESPACE
  value: {{ . | quote }}
{{- end }}
{{- with .Values.pipelines.kfp.credentialsSecret }}
- name: KFP_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: token
{{- end }}
{{- with .Values.images.registry }}
- name: CHURNOPS_IMAGE_REGISTRY
  value: {{ . | trimSuffix "/" | quote }}
{{- end }}
- name: CHURNOPS_DATA_URI
  value: {{ .Values.pipelines.dataUri | quote }}
- name: CHURNOPS_PIPELINE_PARAMS
  value: {{ .Values.pipelines.params | toJson | quote }}
- name: HOME
  value: /tmp
- name: PYTHONDONTWRITEBYTECODE
  value: "1"
{{- end -}}

{{/* Egress to the KFP API: its namespace in the cluster, or the external CIDRs. */}}
{{- define "churnops.kfp.egress" -}}
- to:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: {{ .Values.pipelines.namespace }}
  ports:
    - protocol: TCP
      port: {{ include "churnops.kfp.port" . }}
{{- with .Values.networkPolicy.externalEgressCIDRs }}
- to:
    {{- range . }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
  ports:
    - protocol: TCP
      port: 443
{{- end }}
{{- end -}}

{{/* MLflow identities that get their own Secret <fullname>-mlflow-<role> in the release
namespace (templates/mlflow.yaml); the pipeline's lives in pipelines.namespace. */}}
{{- define "churnops.mlflow.podIdentities" -}}
predictor rollout
{{- end -}}

{{/*
Name of the Secret holding an MLflow identity's MLFLOW_TRACKING_USERNAME/PASSWORD.
Call with (dict "ctx" $ "role" "predictor"). Fails instead of naming a Secret the chart does
not render: an unknown role, or auth on without this release's tracking server.
*/}}
{{- define "churnops.mlflow.identitySecret" -}}
{{- $ctx := .ctx -}}
{{- $roles := splitList " " (include "churnops.mlflow.podIdentities" $ctx) -}}
{{- if not (has .role $roles) -}}
{{- fail (printf "no MLflow identity Secret for role %q (the chart generates: %s)" .role (join ", " $roles)) -}}
{{- end -}}
{{- if not $ctx.Values.mlflow.enabled -}}
{{- fail "mlflow.auth.enabled needs mlflow.enabled: the MLflow identities and their Secrets are generated with this release's tracking server" -}}
{{- end -}}
{{- printf "%s-mlflow-%s" (include "churnops.fullname" $ctx) .role -}}
{{- end -}}
