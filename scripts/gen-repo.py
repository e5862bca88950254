#!/usr/bin/env python3
"""Generates a synthetic GitOps repo of N apps x 5 environments for benchmarks.

usage: gen-repo.py DIR N
       gen-repo.py DIR --scale operate-first
Each app: a base (ServiceAccount, Deployment, Service, Ingress, NetworkPolicy, ConfigMap) and
five overlays (dev, staging, prod-west, prod-east, prod-central) with replicas, images,
a resources patch and an annotation patch; one Argo CD Application per overlay.

--scale operate-first shapes the repo like the operate-first apps repository: 239 overlays
(48 apps, one without prod-central), and the weight that makes its renders big: every
overlay pulls a shared monitoring component, a third of the apps ship an operator's
CustomResourceDefinitions (large OpenAPI schemas), a quarter a Grafana dashboard
ConfigMap generated from a JSON file, and each app has RBAC.
"""
import json
import os
import sys

ENVS = ["dev", "staging", "prod-west", "prod-east", "prod-central"]


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def app(root, i, envs=ENVS):
    name = f"app-{i:03d}"
    base = f"{root}/apps/{name}/base"
    write(f"{base}/kustomization.yaml", f"""apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: team-{i % 10}
labels:
  - pairs:
      app.kubernetes.io/name: {name}
      app.kubernetes.io/part-of: bench
resources:
  - serviceaccount.yaml
  - deployment.yaml
  - service.yaml
  - networkpolicy.yaml
configMapGenerator:
  - name: {name}-config
    literals:
      - LOG_LEVEL=info
""")
    write(f"{base}/deployment.yaml", f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: 1
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      serviceAccountName: {name}
      securityContext:
        runAsNonRoot: true
      containers:
        - name: app
          image: ghcr.io/bench/{name}:1.0.{i}
          ports:
            - name: http
              containerPort: 8080
          envFrom:
            - configMapRef:
                name: {name}-config
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
          readinessProbe:
            httpGet: {{path: /ready, port: http}}
          livenessProbe:
            httpGet: {{path: /live, port: http}}
          resources:
            requests: {{cpu: 100m, memory: 128Mi}}
            limits: {{cpu: 500m, memory: 256Mi}}
""")
    write(f"{base}/service.yaml", f"""# service and ingress
apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  selector:
    app: {name}
  ports:
    - port: 80
      targetPort: http
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {name}
  annotations:
    nginx.ingress.kubernetes.io/ssl-protocols: "TLSv1.2"
spec:
  ingressClassName: nginx
  tls:
    - hosts: [{name}.example.com]
      secretName: {name}-tls
  rules:
    - host: {name}.example.com
      http:
        paths:
          - path: /
            pathType: Prefix
            backend:
              service: {{name: {name}, port: {{number: 80}}}}
""")
    write(f"{base}/serviceaccount.yaml", f"""apiVersion: v1
kind: ServiceAccount
metadata:
  name: {name}
automountServiceAccountToken: false
""")
    write(f"{base}/networkpolicy.yaml", f"""apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {name}
spec:
  podSelector:
    matchLabels:
      app: {name}
  policyTypes: [Ingress]
  ingress:
    - ports:
        - port: 8080
""")
    for n, env in enumerate(envs):
        ov = f"{root}/apps/{name}/overlays/{env}"
        prod = env.startswith("prod")
        write(f"{ov}/kustomization.yaml", f"""apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../base
replicas:
  - name: {name}
    count: {3 if prod else 1}
images:
  - name: ghcr.io/bench/{name}
    newTag: 1.{n}.{i}
patches:
  - path: resources.yaml
  - target:
      kind: Ingress
    patch: |-
      - op: replace
        path: /spec/rules/0/host
        value: {name}.{env}.example.com
""")
        spread = f"""      topologySpreadConstraints:
        - maxSkew: 1
          topologyKey: topology.kubernetes.io/zone
          whenUnsatisfiable: ScheduleAnyway
          labelSelector:
            matchLabels:
              app: {name}
""" if prod else ""
        write(f"{ov}/resources.yaml", f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  template:
    spec:
      containers:
        - name: app
          resources:
            limits: {{cpu: "{2 if prod else 1}", memory: {"1Gi" if prod else "512Mi"}}}
{spread}""")
        write(f"{root}/argocd/{env}/{name}.yaml", f"""apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: {name}-{env}
  namespace: argocd
spec:
  project: default
  source:
    repoURL: https://git.example.com/bench.git
    targetRevision: main
    path: apps/{name}/overlays/{env}
  destination:
    server: https://{env}.k8s.example.com
    namespace: team-{i % 10}
""")


def crd(group, kind, n_props):
    """An operator's CustomResourceDefinition with a large schema, like the ones operators ship."""
    props = {}
    for p in range(n_props):
        props[f"field{p:03d}"] = {
            "type": "object",
            "description": f"Settings block {p} of the {kind} spec. " * 4,
            "properties": {
                "enabled": {"type": "boolean", "description": "Whether this block is on."},
                "replicas": {"type": "integer", "minimum": 0, "description": "How many."},
                "image": {"type": "string", "description": "Container image of the block."},
                "resources": {
                    "type": "object",
                    "properties": {
                        "limits": {"type": "object", "additionalProperties": {"x-kubernetes-int-or-string": True}},
                        "requests": {"type": "object", "additionalProperties": {"x-kubernetes-int-or-string": True}},
                    },
                },
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        }
    plural = kind.lower() + "s"
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": kind + "List"},
            "versions": [{
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": props},
                    "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                }}},
            }],
        },
    }


def dashboard(name, panels):
    return {
        "title": f"{name} overview",
        "uid": name,
        "panels": [
            {
                "id": p,
                "type": "timeseries",
                "title": f"{name} panel {p}",
                "gridPos": {"h": 8, "w": 12, "x": (p % 2) * 12, "y": (p // 2) * 8},
                "targets": [{"expr": f'sum(rate(http_requests_total{{app="{name}",code=~"5.."}}[5m])) by (route) / {p + 1}', "refId": "A"}],
            }
            for p in range(panels)
        ],
    }


def operate_first(root, i, envs):
    """The extra weight of an operate-first-like app on top of app()."""
    name = f"app-{i:03d}"
    base = f"{root}/apps/{name}/base"
    extra = ["rbac.yaml"]
    write(f"{base}/rbac.yaml", f"""apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {name}
rules:
  - apiGroups: [""]
    resources: [configmaps, secrets]
    verbs: [get, list, watch]
  - apiGroups: [coordination.k8s.io]
    resources: [leases]
    verbs: [get, create, update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {name}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {name}
subjects:
  - kind: ServiceAccount
    name: {name}
""")
    if i % 3 == 0:
        extra.append("crds.yaml")
        docs = [crd(f"app{i:03d}.bench.example", k, 60) for k in ("Cluster", "Backup", "Pool")]
        write(f"{base}/crds.yaml", "---\n".join(json.dumps(d, indent=2) + "\n" for d in docs))
    gen = ""
    if i % 4 == 0:
        write(f"{base}/dashboards/{name}.json", json.dumps(dashboard(name, 40), indent=2) + "\n")
        gen = f"""  - name: {name}-dashboards
    files:
      - dashboards/{name}.json
    options:
      labels:
        grafana_dashboard: "1"
"""
    k = f"{base}/kustomization.yaml"
    text = open(k).read().replace("  - networkpolicy.yaml\n", "  - networkpolicy.yaml\n" + "".join(f"  - {e}\n" for e in extra))
    text = text.replace("configMapGenerator:\n", "configMapGenerator:\n" + gen)
    write(k, text)
    for env in envs:
        ov = f"{root}/apps/{name}/overlays/{env}/kustomization.yaml"
        write(ov, open(ov).read().replace("resources:\n  - ../../base\n", "resources:\n  - ../../base\ncomponents:\n  - ../../../../components/monitoring\n"))


def monitoring_component(root):
    write(f"{root}/components/monitoring/kustomization.yaml", """apiVersion: kustomize.config.k8s.io/v1alpha1
kind: Component
patches:
  - target:
      kind: Deployment
    patch: |-
      - op: add
        path: /spec/template/metadata/annotations
        value:
          prometheus.io/scrape: "true"
          prometheus.io/port: "8080"
""")


def main():
    args = sys.argv[1:]
    if len(args) == 3 and args[1] == "--scale" and args[2] == "operate-first":
        root = args[0]
        write(f"{root}/.agentops.yaml", "repo_url: https://git.example.com/bench.git\n")
        monitoring_component(root)
        for i in range(48):
            envs = ENVS if i != 47 else ENVS[:-1]
            app(root, i, envs)
            operate_first(root, i, envs)
        return
    root, n = args[0], int(args[1])
    write(f"{root}/.agentops.yaml", "repo_url: https://git.example.com/bench.git\n")
    for i in range(n):
        app(root, i)


if __name__ == "__main__":
    main()
