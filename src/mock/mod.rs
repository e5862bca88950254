//! Mock clusters: a fake kube-apiserver loaded from plain Kubernetes YAML, faithful enough
//! that kube-rs and the real kubectl both work against it, plus a simulated Argo CD and a
//! Prometheus API for tests, evals and the demo.
