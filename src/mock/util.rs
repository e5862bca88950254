//! Small helpers of the mock API server: times (from [`crate::time`]) and random UIDs
//! (uuid; other random numbers come from fastrand).

pub use crate::time::{age, now_micros, now_seconds, parse_time};

/// A random v4 UUID, as the API server gives objects and audit events.
pub fn new_uid() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_look_like_v4() {
        let u = new_uid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_ne!(u, new_uid());
    }
}
