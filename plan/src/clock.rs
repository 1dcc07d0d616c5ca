//! The plan clock. A plan is written in calendar time (weeks, dates); a demo or a test wants to watch
//! it run in minutes. Plan time = `plan_origin_ms + (wall − wall_origin_ms) × speed`: the plan file is
//! unchanged, only this mapping is. The companion persists the clock so a restart continues the plan
//! where it was rather than jumping.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PlanClock {
    pub plan_origin_ms: u64,
    pub wall_origin_ms: u64,
    /// Plan milliseconds per wall millisecond (1 = real time; 40 320 = 12 weeks in 3 minutes).
    pub speed: f64,
}

impl PlanClock {
    /// Starts the plan clock at `plan_origin_ms` now (`wall_ms`).
    pub fn new(plan_origin_ms: u64, wall_ms: u64, speed: f64) -> Self {
        let speed = if speed.is_finite() && speed > 0.0 {
            speed
        } else {
            1.0
        };
        Self {
            plan_origin_ms,
            wall_origin_ms: wall_ms,
            speed,
        }
    }

    pub fn plan_ms(&self, wall_ms: u64) -> u64 {
        let elapsed = wall_ms.saturating_sub(self.wall_origin_ms) as f64 * self.speed;
        self.plan_origin_ms.saturating_add(elapsed as u64)
    }

    /// The same plan instant, now running at `speed` (a restart with another speed does not jump).
    pub fn with_speed(&self, wall_ms: u64, speed: f64) -> Self {
        Self::new(self.plan_ms(wall_ms), wall_ms, speed)
    }

    /// Wall milliseconds a plan duration takes on this clock.
    pub fn wall_duration_ms(&self, plan_ms: u64) -> u64 {
        (plan_ms as f64 / self.speed).ceil() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accelerated_and_continuous() {
        let c = PlanClock::new(1_000_000, 50, 3600.0);
        assert_eq!(c.plan_ms(50), 1_000_000);
        assert_eq!(
            c.plan_ms(1_050),
            1_000_000 + 3_600_000,
            "a wall second is a plan hour"
        );
        let c2 = c.with_speed(1_050, 1.0);
        assert_eq!(c2.plan_ms(1_050), c.plan_ms(1_050));
        assert_eq!(c2.plan_ms(2_050), c.plan_ms(1_050) + 1000);
        assert_eq!(PlanClock::new(0, 0, f64::NAN).speed, 1.0);
    }
}
