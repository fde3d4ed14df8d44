//! The allocation policy, pure: which DPS instance a device goes to.
//!
//! Least-loaded first: among the instances that are active, serve the tenant, are in the
//! requested region, are below their registration cap and whose per-minute rate still admits
//! one more registration, pick the one with the lowest fill ratio (registrations / cap); ties go
//! to the lower recent rate, then to the name. Storage backends call [`rank`] inside their
//! transaction and re-check the chosen row with [`admits`] once it is locked, then increment it
//! conditionally, so caps hold under any concurrency.

use crate::model::{DpsInstance, InstanceState};

const MINUTE_MS: i64 = 60_000;
const WAIT_STEP_MS: i64 = 250;

/// A sliding-window estimate of registrations in the last minute: two fixed one-minute windows,
/// the older one weighted by how much of it still overlaps the last 60 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateWindow {
    /// The current window, as `unix_ms / 60_000`.
    pub minute: i64,
    /// Registrations in `minute`.
    pub count: u64,
    /// Registrations in `minute - 1`.
    pub previous_count: u64,
}

impl RateWindow {
    /// The one-minute window `now_ms` falls in.
    pub fn minute_of(now_ms: i64) -> i64 {
        now_ms.div_euclid(MINUTE_MS)
    }

    /// This window, rolled forward to `now_ms`.
    pub fn at(&self, now_ms: i64) -> Self {
        let minute = Self::minute_of(now_ms);
        if minute <= self.minute {
            *self
        } else if minute == self.minute + 1 {
            Self {
                minute,
                count: 0,
                previous_count: self.count,
            }
        } else {
            Self {
                minute,
                count: 0,
                previous_count: 0,
            }
        }
    }

    /// Estimated registrations in the 60 s ending at `now_ms`.
    pub fn estimate(&self, now_ms: i64) -> f64 {
        let window = self.at(now_ms);
        let elapsed = now_ms.rem_euclid(MINUTE_MS) as f64 / MINUTE_MS as f64;
        window.count as f64 + window.previous_count as f64 * (1.0 - elapsed)
    }

    /// Whether one more registration at `now_ms` stays within `limit` per minute.
    pub fn admits(&self, now_ms: i64, limit: u64) -> bool {
        self.estimate(now_ms) + 1.0 <= limit as f64
    }

    /// The window after recording one registration at `now_ms`.
    pub fn record(&self, now_ms: i64) -> Self {
        let mut window = self.at(now_ms);
        window.count += 1;
        window
    }

    /// Milliseconds until one more registration is admitted; `None` if never (`limit` 0).
    pub fn wait_ms(&self, now_ms: i64, limit: u64) -> Option<i64> {
        if limit == 0 {
            return None;
        }
        (0..=(2 * MINUTE_MS / WAIT_STEP_MS))
            .map(|step| step * WAIT_STEP_MS)
            .find(|wait| self.admits(now_ms + wait, limit))
    }
}

/// Who is asking and where they may go.
#[derive(Debug, Clone, Copy)]
pub struct Placement<'a> {
    /// The device's tenant.
    pub tenant: &'a str,
    /// Restrict to this region.
    pub region: Option<&'a str>,
    /// Never choose this instance (reprovision "to another instance").
    pub exclude: Option<&'a str>,
    /// This instance holds the device already; its slot counts as free for this decision
    /// (rebalance).
    pub releasing: Option<&'a str>,
}

/// Why no instance can take the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllocationRefusal {
    /// No active instance serves this tenant and region.
    NoEligibleInstance,
    /// Every eligible instance is at its registration cap.
    CapacityExhausted,
    /// Every eligible instance with room is at its per-minute rate; retry after this long.
    RateLimited {
        /// Milliseconds until the first instance admits a registration.
        retry_after_ms: i64,
    },
}

fn eligible(instance: &DpsInstance, placement: &Placement<'_>) -> bool {
    instance.state == InstanceState::Active
        && instance.serves_tenant(placement.tenant)
        && instance.in_region(placement.region)
        && placement.exclude != Some(instance.name.as_str())
}

fn load(instance: &DpsInstance, placement: &Placement<'_>) -> u64 {
    let releasing = placement.releasing == Some(instance.name.as_str());
    instance.registrations.saturating_sub(u64::from(releasing))
}

fn has_room(instance: &DpsInstance, placement: &Placement<'_>) -> bool {
    load(instance, placement) < instance.registration_cap
}

/// Whether `instance` (freshly read, ideally locked) can take one more device now.
pub fn admits(instance: &DpsInstance, placement: &Placement<'_>, now_ms: i64) -> bool {
    eligible(instance, placement)
        && has_room(instance, placement)
        && instance.rate.admits(now_ms, instance.rate_limit_per_minute)
}

/// The admissible instances, best first.
pub fn rank<'a>(
    instances: &'a [DpsInstance],
    placement: &Placement<'_>,
    now_ms: i64,
) -> Result<Vec<&'a DpsInstance>, AllocationRefusal> {
    let eligible: Vec<&DpsInstance> = instances
        .iter()
        .filter(|i| eligible(i, placement))
        .collect();
    if eligible.is_empty() {
        return Err(AllocationRefusal::NoEligibleInstance);
    }
    let with_room: Vec<&DpsInstance> = eligible
        .into_iter()
        .filter(|i| has_room(i, placement))
        .collect();
    if with_room.is_empty() {
        return Err(AllocationRefusal::CapacityExhausted);
    }
    let mut admitted: Vec<&DpsInstance> = with_room
        .iter()
        .copied()
        .filter(|i| i.rate.admits(now_ms, i.rate_limit_per_minute))
        .collect();
    if admitted.is_empty() {
        let retry_after_ms = with_room
            .iter()
            .filter_map(|i| i.rate.wait_ms(now_ms, i.rate_limit_per_minute))
            .min()
            .unwrap_or(MINUTE_MS);
        return Err(AllocationRefusal::RateLimited {
            retry_after_ms: retry_after_ms.max(1),
        });
    }
    admitted.sort_by(|a, b| {
        // Compare fill ratios exactly: load_a / cap_a vs load_b / cap_b.
        let fill_a = u128::from(load(a, placement)) * u128::from(b.registration_cap);
        let fill_b = u128::from(load(b, placement)) * u128::from(a.registration_cap);
        fill_a
            .cmp(&fill_b)
            .then_with(|| a.rate.estimate(now_ms).total_cmp(&b.rate.estimate(now_ms)))
            .then_with(|| a.name.cmp(&b.name))
    });
    Ok(admitted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn instance(name: &str, registrations: u64, cap: u64) -> DpsInstance {
        DpsInstance {
            name: name.to_owned(),
            id_scope: format!("0ne{name}"),
            global_endpoint: "global.example".to_owned(),
            service_endpoint: "http://127.0.0.1:1".to_owned(),
            region: "weu".to_owned(),
            allowed_tenants: Vec::new(),
            registration_cap: cap,
            rate_limit_per_minute: 1_000,
            state: InstanceState::Active,
            registrations,
            rate: RateWindow::default(),
            created_at_ms: 0,
            service_credentials: None,
        }
    }

    const ANYONE: Placement<'static> = Placement {
        tenant: "t1",
        region: None,
        exclude: None,
        releasing: None,
    };

    #[test]
    fn picks_the_least_filled_instance() {
        let pool = [
            instance("a", 10, 100),
            instance("b", 5, 100),
            instance("c", 30, 1_000),
        ];
        let ranked = rank(&pool, &ANYONE, 0).expect("room");
        let names: Vec<&str> = ranked.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["c", "b", "a"]);
    }

    #[test]
    fn never_exceeds_the_registration_cap() {
        let pool = [instance("a", 100, 100), instance("b", 99, 100)];
        let ranked = rank(&pool, &ANYONE, 0).expect("b has room");
        assert_eq!(ranked.len(), 1);
        assert_eq!(ranked[0].name, "b");
        let full = [instance("a", 100, 100)];
        assert_eq!(
            rank(&full, &ANYONE, 0).err(),
            Some(AllocationRefusal::CapacityExhausted)
        );
    }

    #[test]
    fn filters_tenant_region_state_and_exclusion() {
        let mut dedicated = instance("a", 0, 10);
        dedicated.allowed_tenants = vec!["t2".to_owned()];
        let mut draining = instance("b", 0, 10);
        draining.state = InstanceState::Draining;
        let mut elsewhere = instance("c", 0, 10);
        elsewhere.region = "eus".to_owned();
        let open = instance("d", 5, 10);
        let pool = [dedicated, draining, elsewhere, open];
        let names = |p: &Placement<'_>| -> Result<Vec<String>, AllocationRefusal> {
            rank(&pool, p, 0).map(|r| r.iter().map(|i| i.name.clone()).collect())
        };
        assert_eq!(names(&ANYONE), Ok(vec!["c".to_owned(), "d".to_owned()]));
        let weu = Placement {
            region: Some("weu"),
            ..ANYONE
        };
        assert_eq!(names(&weu), Ok(vec!["d".to_owned()]));
        let t2 = Placement {
            tenant: "t2",
            region: Some("weu"),
            ..ANYONE
        };
        assert_eq!(names(&t2), Ok(vec!["a".to_owned(), "d".to_owned()]));
        let not_d = Placement {
            exclude: Some("d"),
            ..weu
        };
        assert_eq!(names(&not_d), Err(AllocationRefusal::NoEligibleInstance));
    }

    #[test]
    fn releasing_counts_the_own_slot_as_free() {
        let pool = [instance("a", 10, 10), instance("b", 10, 10)];
        assert_eq!(
            rank(&pool, &ANYONE, 0).err(),
            Some(AllocationRefusal::CapacityExhausted)
        );
        let rebalance = Placement {
            releasing: Some("a"),
            ..ANYONE
        };
        let ranked = rank(&pool, &rebalance, 0).expect("own slot is free");
        assert_eq!(ranked[0].name, "a");
    }

    #[test]
    fn rate_limit_refuses_with_a_retry_after() {
        let mut busy = instance("a", 0, 10_000);
        busy.rate_limit_per_minute = 3;
        let start = 120_000; // the start of minute 2
        for _ in 0..3 {
            busy.rate = busy.rate.record(start + 1_000);
        }
        let pool = [busy.clone()];
        match rank(&pool, &ANYONE, start + 2_000) {
            Err(AllocationRefusal::RateLimited { retry_after_ms }) => {
                // Next minute starts 58 s later, and the previous window still weighs 3*(1-f):
                // it admits once 3*(1-f) <= 2, i.e. f >= 1/3 -> 20 s into the next minute.
                assert!(
                    (58_000..=78_250).contains(&retry_after_ms),
                    "{retry_after_ms}"
                );
            }
            other => panic!("expected rate limit, got {other:?}"),
        }
        assert!(busy.rate.admits(start + 2 * MINUTE_MS + 1, 3));
    }

    #[test]
    fn zero_rate_limit_never_admits() {
        let mut paused = instance("a", 0, 10);
        paused.rate_limit_per_minute = 0;
        assert_eq!(paused.rate.wait_ms(0, 0), None);
        match rank(&[paused], &ANYONE, 0) {
            Err(AllocationRefusal::RateLimited { retry_after_ms }) => {
                assert_eq!(retry_after_ms, MINUTE_MS)
            }
            other => panic!("expected rate limit, got {other:?}"),
        }
    }

    #[test]
    fn window_rolls_over() {
        let w = RateWindow {
            minute: 5,
            count: 7,
            previous_count: 2,
        };
        assert_eq!(
            w.at(6 * MINUTE_MS),
            RateWindow {
                minute: 6,
                count: 0,
                previous_count: 7
            }
        );
        assert_eq!(w.at(9 * MINUTE_MS).estimate(9 * MINUTE_MS), 0.0);
        assert_eq!(w.estimate(5 * MINUTE_MS), 9.0);
        assert_eq!(w.estimate(5 * MINUTE_MS + 30_000), 8.0);
    }

    proptest! {
        /// Allocating one by one with the policy keeps equal-capacity instances within one
        /// device of each other and never exceeds a cap.
        #[test]
        fn sequential_allocation_is_balanced(k in 1usize..8, n in 0u64..2_000, cap in 1u64..600) {
            let mut pool: Vec<DpsInstance> =
                (0..k).map(|i| instance(&format!("i{i}"), 0, cap)).collect();
            let mut placed = 0u64;
            for step in 0..n {
                let now = i64::try_from(step).unwrap_or(i64::MAX) * MINUTE_MS;
                let Ok(ranked) = rank(&pool, &ANYONE, now) else { break };
                let name = ranked[0].name.clone();
                let chosen = pool.iter_mut().find(|i| i.name == name).unwrap();
                chosen.registrations += 1;
                chosen.rate = chosen.rate.record(now);
                placed += 1;
            }
            let counts: Vec<u64> = pool.iter().map(|i| i.registrations).collect();
            let max = counts.iter().copied().max().unwrap_or(0);
            let min = counts.iter().copied().min().unwrap_or(0);
            prop_assert!(max - min <= 1);
            prop_assert!(max <= cap);
            prop_assert_eq!(placed, n.min(cap * k as u64));
        }
    }
}
