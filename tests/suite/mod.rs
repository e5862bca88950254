mod cluster;
mod common;
mod kustomize;
mod mock;
mod tools;
mod validate;
