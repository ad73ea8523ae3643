//! Which blobs a peer fetches by itself: a policy per group.
//!
//! A group's policy fetches every referenced blob up to `eager_max_bytes` as soon as the
//! referencing event arrives (eager); larger ones are fetched when the application asks
//! (on demand). The decision uses the size the event claims; the fetch itself refuses to
//! receive more than that size.

use std::collections::HashMap;

use crate::access::GroupId;
use crate::blob_ref::BlobRef;

/// Default eager limit: 16 MiB.
pub const DEFAULT_EAGER_MAX_BYTES: u64 = 16 * 1024 * 1024;

/// Fetch policy of one group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchPolicy {
    /// Blobs up to this many bytes are fetched eagerly; larger ones on demand.
    /// `0` fetches nothing eagerly (except empty blobs); `u64::MAX` fetches everything.
    pub eager_max_bytes: u64,
}

impl Default for FetchPolicy {
    /// [`DEFAULT_EAGER_MAX_BYTES`].
    fn default() -> Self {
        Self {
            eager_max_bytes: DEFAULT_EAGER_MAX_BYTES,
        }
    }
}

/// What to do with a newly referenced blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchDecision {
    /// Fetch it now.
    Eager,
    /// Fetch it when asked.
    OnDemand,
}

/// Policies per group, with a default for groups without one.
#[derive(Debug, Clone, Default)]
pub struct FetchPolicies {
    default: FetchPolicy,
    groups: HashMap<GroupId, FetchPolicy>,
}

impl FetchPolicies {
    /// Policies that apply `default` to every group.
    pub fn new(default: FetchPolicy) -> Self {
        Self {
            default,
            groups: HashMap::new(),
        }
    }

    /// Sets the policy of one group.
    pub fn set(&mut self, group: GroupId, policy: FetchPolicy) {
        self.groups.insert(group, policy);
    }

    /// The policy of `group`.
    pub fn get(&self, group: &GroupId) -> FetchPolicy {
        self.groups.get(group).copied().unwrap_or(self.default)
    }

    /// Decides for a blob referenced by an event of `group`.
    pub fn decide(&self, group: &GroupId, blob: &BlobRef) -> FetchDecision {
        if blob.size <= self.get(group).eager_max_bytes {
            FetchDecision::Eager
        } else {
            FetchDecision::OnDemand
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob_ref::BlobHash;

    #[test]
    fn eager_up_to_the_limit_then_on_demand() {
        let mut p = FetchPolicies::new(FetchPolicy {
            eager_max_bytes: 100,
        });
        let g = [1u8; 32];
        let small = BlobRef {
            hash: BlobHash([0; 32]),
            size: 100,
        };
        let big = BlobRef {
            hash: BlobHash([0; 32]),
            size: 101,
        };
        assert_eq!(p.decide(&g, &small), FetchDecision::Eager);
        assert_eq!(p.decide(&g, &big), FetchDecision::OnDemand);
        p.set(g, FetchPolicy { eager_max_bytes: 0 });
        assert_eq!(p.decide(&g, &small), FetchDecision::OnDemand);
        assert_eq!(p.decide(&[2u8; 32], &small), FetchDecision::Eager);
    }
}
