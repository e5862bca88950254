//! A fake model for tests and evals: answers from a queue and records every request.

use std::collections::VecDeque;
use std::sync::Mutex;

use super::{BoxFuture, ChatRequest, ChatResponse, LlmClient, LlmError};

#[derive(Default)]
pub struct ScriptedLlm {
    answers: Mutex<VecDeque<Result<ChatResponse, LlmError>>>,
    requests: Mutex<Vec<ChatRequest>>,
}

impl ScriptedLlm {
    pub fn new(answers: impl IntoIterator<Item = ChatResponse>) -> ScriptedLlm {
        ScriptedLlm { answers: Mutex::new(answers.into_iter().map(Ok).collect()), requests: Mutex::default() }
    }

    /// Queues another answer.
    pub fn push(&self, answer: ChatResponse) {
        if let Ok(mut q) = self.answers.lock() {
            q.push_back(Ok(answer));
        }
    }

    /// Queues a failure.
    pub fn push_error(&self, error: LlmError) {
        if let Ok(mut q) = self.answers.lock() {
            q.push_back(Err(error));
        }
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<ChatRequest> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Answers not used yet.
    pub fn remaining(&self) -> usize {
        self.answers.lock().map(|q| q.len()).unwrap_or(0)
    }
}

impl LlmClient for ScriptedLlm {
    fn complete(&self, request: ChatRequest) -> BoxFuture<'_, Result<ChatResponse, LlmError>> {
        let n = match self.requests.lock() {
            Ok(mut r) => {
                r.push(request);
                r.len()
            }
            Err(_) => 0,
        };
        let answer =
            self.answers.lock().ok().and_then(|mut q| q.pop_front()).unwrap_or_else(|| {
                Err(LlmError::Fake(format!("the scripted model has no answer left for request {n}")))
            });
        Box::pin(async move { answer })
    }
}
