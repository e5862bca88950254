mod common;
mod kustomize;
mod tools;
mod validate;
