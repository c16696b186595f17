//! The server-down breaker: a CRM that fails every row the same way is down, not unlucky,
//! and a run that went on would spend a failed (or uncertain) row per request.

use super::Final;

/// Consecutive maybe-processed or failed answers that mean the server is down.
pub const DOWN_AFTER: u32 = 10;

#[derive(Debug, Default)]
pub struct Breaker {
    in_a_row: u32,
}

impl Breaker {
    /// Count one row's end; true once `DOWN_AFTER` rows in a row failed or got no usable
    /// answer. Rows that failed after every retry count too: a server that cannot be
    /// reached fails each row the same way. Any other answer closes the count.
    pub fn trips(&mut self, end: &Final) -> bool {
        match end {
            Final::Uncertain | Final::Failed => {
                self.in_a_row += 1;
                self.in_a_row >= DOWN_AFTER
            }
            // A refused token or a wrong path stops the run on its own.
            Final::Stop(_) => false,
            Final::Created(_) | Final::Rejected | Final::NotSent => {
                self.in_a_row = 0;
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_failures_in_a_row_trip_it_and_one_answer_resets_the_count() {
        let mut breaker = Breaker::default();
        for _ in 0..DOWN_AFTER - 1 {
            assert!(!breaker.trips(&Final::Uncertain));
        }
        assert!(!breaker.trips(&Final::Created(None)));
        for _ in 0..DOWN_AFTER - 1 {
            assert!(!breaker.trips(&Final::Failed));
        }
        assert!(breaker.trips(&Final::Uncertain));
    }
}
