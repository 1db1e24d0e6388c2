//! Placeholder until the engine holds events (replaced by the events module).
use crate::AppIndex;

impl AppIndex {
    pub fn add_events(&mut self, _events: &[unico_core::Event]) {}
    pub fn remove_events_before(&mut self, _event: &unico_core::EventCode, _before: i64) -> u64 {
        0
    }
}
