mod common;
mod tools;
mod validate;
