#!/usr/bin/env python3
"""Generates a synthetic GitOps repo of N apps x 5 environments for benchmarks.

usage: gen-repo.py DIR N
Each app: a base (Deployment, Service, Ingress, NetworkPolicy, ConfigMap) and five
overlays (dev, staging, prod-west, prod-east, prod-central) with replicas, images,
a resources patch and an annotation patch; one Argo CD Application per overlay.
"""
import os
import sys

ENVS = ["dev", "staging", "prod-west", "prod-east", "prod-central"]


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def app(root, i):
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
          readinessProbe:
            httpGet: {{path: /ready, port: http}}
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
    for n, env in enumerate(ENVS):
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
""")
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


def main():
    root, n = sys.argv[1], int(sys.argv[2])
    write(f"{root}/.agentops.yaml", "repo_url: https://git.example.com/bench.git\n")
    for i in range(n):
        app(root, i)


if __name__ == "__main__":
    main()
