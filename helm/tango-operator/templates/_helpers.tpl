{{/* Names, labels and the pieces every component shares. */}}

{{- define "tango-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tango-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "tango-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object; call with (dict "ctx" $ "component" "watcher"). */}}
{{- define "tango-operator.labels" -}}
helm.sh/chart: {{ include "tango-operator.chart" .ctx }}
{{ include "tango-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: tango-operator
{{- end }}

{{- define "tango-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tango-operator.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- if .component }}
app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- end }}

{{/* The ServiceAccount of a component; call with (dict "ctx" $ "component" "worker"). */}}
{{- define "tango-operator.serviceAccountName" -}}
{{- $sa := (index .ctx.Values .component).serviceAccount }}
{{- if $sa.create }}
{{- default (printf "%s-%s" (include "tango-operator.fullname" .ctx) .component) $sa.name }}
{{- else }}
{{- required (printf "%s.serviceAccount.name is required when %s.serviceAccount.create is false" .component .component) $sa.name }}
{{- end }}
{{- end }}

{{/* image: [global.imageRegistry/]repository:tag, the tag defaulting to the appVersion (the
operator's three images, as `make images` names them). Call with (dict "ctx" $ "image" .Values.x.image). */}}
{{- define "tango-operator.image" -}}
{{- $registry := trimSuffix "/" (default "" (.ctx.Values.global).imageRegistry) }}
{{- $repository := ternary (printf "%s/%s" $registry .image.repository) .image.repository (ne $registry "") }}
{{- printf "%s:%s" $repository (default .ctx.Chart.AppVersion .image.tag) }}
{{- end }}

{{- define "tango-operator.leaseName" -}}
{{- default (printf "%s-watcher" (include "tango-operator.fullname" .)) .Values.watcher.leaderElection.leaseName }}
{{- end }}

{{/* --- RBAC -------------------------------------------------------------------------- */}}

{{- /*
Least privilege, from what the code does (tests/chart/test_rbac.py checks both directions
against the API requests of a real run):
  watcher: list+watch of the custom resources and of the child kinds it maps back to them;
           the Lease of its leader election (create, and get/update of that one Lease:
           watcher-leader-election-role.yaml).
  workers: get/patch of the custom resources (finalizers), list of DeviceServers (a
           DatabaseDS wakes its users), patch of their status;
           server-side apply (patch) of the children, get of StatefulSets; create of the
           TANGO DB credentials Secret and get of a user-named one; create of Events.
  networkPolicy.enabled: the workers apply NetworkPolicies (create, patch) and the watcher
           watches them (list, watch); off, the workers may only read and delete them (those
           made while it was on go at the next reconcile), and the watcher has nothing.
The rules below are those of <component>-clusterrole.yaml (all namespaces) or, with
watchNamespaces, of <component>-role.yaml (a Role in each of those namespaces);
namespaceSelector adds list+watch of Namespaces (cluster-scoped by nature:
watcher-namespaces-clusterrole.yaml).
*/}}

{{/* The rules of a component's (Cluster)Role; call with (dict "ctx" $ "component" "watcher"). */}}
{{- define "tango-operator.rbacRules" -}}
{{- $group := "tango.tango-controls.org" }}
{{- $rules := dict }}
{{- $_ := set $rules "watcher" (list
  (dict "apiGroups" (list $group) "resources" (list "deviceservers" "databaseds") "verbs" (list "list" "watch"))
  (dict "apiGroups" (list "apps") "resources" (list "statefulsets") "verbs" (list "list" "watch"))
  (dict "apiGroups" (list "") "resources" (list "configmaps" "persistentvolumeclaims" "pods" "services") "verbs" (list "list" "watch"))
) }}
{{- $_ := set $rules "worker" (list
  (dict "apiGroups" (list $group) "resources" (list "deviceservers") "verbs" (list "get" "list" "patch"))
  (dict "apiGroups" (list $group) "resources" (list "databaseds") "verbs" (list "get" "patch"))
  (dict "apiGroups" (list $group) "resources" (list "deviceservers/status" "databaseds/status") "verbs" (list "patch"))
  (dict "apiGroups" (list "apps") "resources" (list "statefulsets") "verbs" (list "create" "get" "patch"))
  (dict "apiGroups" (list "") "resources" (list "configmaps" "services") "verbs" (list "create" "patch"))
  (dict "apiGroups" (list "") "resources" (list "persistentvolumeclaims") "verbs" (list "create" "get" "patch"))
  (dict "apiGroups" (list "") "resources" (list "secrets") "verbs" (list "create" "get"))
  (dict "apiGroups" (list "") "resources" (list "pods") "verbs" (list "get" "delete"))
  (dict "apiGroups" (list "") "resources" (list "events") "verbs" (list "create"))
) }}
{{- $networkPolicies := dict "apiGroups" (list "networking.k8s.io") "resources" (list "networkpolicies") }}
{{- if .ctx.Values.networkPolicy.enabled }}
{{- $_ := set $rules "watcher" (append $rules.watcher (merge (dict "verbs" (list "list" "watch")) $networkPolicies)) }}
{{- $_ := set $rules "worker" (append $rules.worker (merge (dict "verbs" (list "create" "patch")) $networkPolicies)) }}
{{- else }}
{{- $_ := set $rules "worker" (append $rules.worker (merge (dict "verbs" (list "get" "delete")) $networkPolicies)) }}
{{- end }}
{{- toYaml (index $rules .component) }}
{{- end }}

{{/* The subject of a component's bindings; call with (dict "ctx" $ "component" "watcher"). */}}
{{- define "tango-operator.rbacSubject" -}}
{{- toYaml (dict "kind" "ServiceAccount" "name" (include "tango-operator.serviceAccountName" .) "namespace" .ctx.Release.Namespace) }}
{{- end }}

{{/* --- Redis ------------------------------------------------------------------------- */}}

{{- define "tango-operator.redisSecretName" -}}
{{- default (printf "%s-redis" (include "tango-operator.fullname" .)) .Values.redis.auth.existingSecret }}
{{- end }}

{{/* Whether the clients get a password at all (always for the bundled Redis). */}}
{{- define "tango-operator.redisHasPassword" -}}
{{- if or .Values.redis.enabled .Values.redis.auth.existingSecret .Values.redis.auth.password }}true{{ end }}
{{- end }}

{{- define "tango-operator.redisTlsCa" -}}
{{- if and .Values.redis.tls.enabled .Values.redis.tls.existingSecret }}true{{ end }}
{{- end }}

{{- define "tango-operator.redisTlsClient" -}}
{{- if .Values.redis.tls.clientCertificateSecret }}true{{ end }}
{{- end }}

{{/* The URL without credentials (they come from TANGO_OPERATOR_REDIS_PASSWORD) and without TLS
options: for a rediss:// URL the code always verifies the server (tango_operator.redis_url.redis_url adds
ssl_cert_reqs=required), with the CA file of TANGO_OPERATOR_REDIS_CA_FILE when the chart mounts
one, else with the system CAs. */}}
{{- define "tango-operator.redisUrl" -}}
{{- $url := "" }}
{{- if .Values.redis.enabled }}
{{- $scheme := ternary "rediss" "redis" .Values.redis.tls.enabled }}
{{- $url = printf "%s://%s-redis.%s.svc:6379/0" $scheme (include "tango-operator.fullname" .) .Release.Namespace }}
{{- else }}
{{- $url = required "redis.external.url is required when redis.enabled is false" .Values.redis.external.url }}
{{- end }}
{{- $tls := hasPrefix "rediss://" $url }}
{{- if and .Values.redis.tls.enabled (not $tls) }}
{{- fail "redis.tls.enabled needs a rediss:// redis.external.url" }}
{{- end }}
{{- if and (include "tango-operator.redisTlsClient" .) (not $tls) }}
{{- fail "redis.tls.clientCertificateSecret needs TLS to Redis (a rediss:// URL)" }}
{{- end }}
{{- $url }}
{{- end }}

{{/* The Redis environment of the watcher, the workers and Flower (names read by
tango_operator.redis_url.redis_url). */}}
{{- define "tango-operator.redisEnv" -}}
- name: TANGO_OPERATOR_REDIS_URL
  value: {{ include "tango-operator.redisUrl" . | quote }}
{{- if include "tango-operator.redisHasPassword" . }}
- name: TANGO_OPERATOR_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "tango-operator.redisSecretName" . }}
      key: {{ .Values.redis.auth.existingSecretPasswordKey }}
{{- end }}
{{- if include "tango-operator.redisTlsCa" . }}
- name: TANGO_OPERATOR_REDIS_CA_FILE
  value: /etc/tango-operator/redis-tls/ca.crt
{{- end }}
{{- if include "tango-operator.redisTlsClient" . }}
- name: TANGO_OPERATOR_REDIS_CERT_FILE
  value: /etc/tango-operator/redis-client-tls/tls.crt
- name: TANGO_OPERATOR_REDIS_KEY_FILE
  value: /etc/tango-operator/redis-client-tls/tls.key
{{- end }}
{{- end }}

{{- define "tango-operator.redisTlsVolumeMount" -}}
{{- if include "tango-operator.redisTlsCa" . }}
- name: redis-tls
  mountPath: /etc/tango-operator/redis-tls
  readOnly: true
{{- end }}
{{- if include "tango-operator.redisTlsClient" . }}
- name: redis-client-tls
  mountPath: /etc/tango-operator/redis-client-tls
  readOnly: true
{{- end }}
{{- end }}

{{- define "tango-operator.redisTlsVolume" -}}
{{- if include "tango-operator.redisTlsCa" . }}
- name: redis-tls
  secret:
    secretName: {{ .Values.redis.tls.existingSecret }}
    defaultMode: 0440
    items:
      - key: ca.crt
        path: ca.crt
{{- end }}
{{- if include "tango-operator.redisTlsClient" . }}
- name: redis-client-tls
  secret:
    secretName: {{ .Values.redis.tls.clientCertificateSecret }}
    defaultMode: 0440
    items:
      - key: tls.crt
        path: tls.crt
      - key: tls.key
        path: tls.key
{{- end }}
{{- end }}

{{/* --- Flower ------------------------------------------------------------------------ */}}

{{- define "tango-operator.flowerSecretName" -}}
{{- default (printf "%s-flower" (include "tango-operator.fullname" .)) .Values.flower.auth.existingSecret }}
{{- end }}

{{/* --- Pods -------------------------------------------------------------------------- */}}

{{/* The scheduling and pod-level fields a component's values carry; call with
(dict "ctx" $ "values" .Values.watcher). */}}
{{- define "tango-operator.podCommon" -}}
securityContext:
  {{- toYaml .ctx.Values.podSecurityContext | nindent 2 }}
{{- with .ctx.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{- define "tango-operator.podMetadata" -}}
labels:
  {{- include "tango-operator.selectorLabels" (dict "ctx" .ctx "component" .component) | nindent 2 }}
  {{- with .values.podLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- with .values.podAnnotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* The dispatch settings; the watcher and the workers must agree on them. */}}
{{- define "tango-operator.dispatchEnv" -}}
- name: TANGO_OPERATOR_DISPATCH
  value: {{ .Values.dispatch.mode | quote }}
- name: TANGO_OPERATOR_DISPATCH_WINDOW
  value: {{ .Values.dispatch.window | quote }}
- name: TANGO_OPERATOR_DISPATCH_DRAIN
  value: {{ .Values.dispatch.drain | quote }}
{{- with .Values.dispatch.namespaceWeights }}
- name: TANGO_OPERATOR_NAMESPACE_WEIGHTS
  value: {{ toJson . | quote }}
{{- end }}
{{- end }}
