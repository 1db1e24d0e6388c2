//! Preparing the segment engine's tables while an events import writes (see
//! [`unico_engine::prepared`]): the store hands each batch it wrote to a [`Preparer`],
//! whose thread adds the stored events to a [`PreparedEvents`]; once the import is to be
//! kept, the tables go to the store, which holds them for the log's follower if and when
//! the import commits. The follower then takes them over instead of reading millions of
//! events back, so the first count after a backfill does not wait for it.
//!
//! The thread works beside the store's writer, [`BATCHES_AHEAD`] batches behind it at
//! most (the writer waits for it past that); it also frees the batches once read. Should it fail,
//! nothing is prepared and the follower reads the events back.

use std::sync::mpsc;
use std::thread::JoinHandle;

use unico_core::{Channel, EventCode, Properties};
use unico_engine::PreparedEvents;
use unico_engine::events::EventRow;
use unico_store::{EventSink, NewEvent, StoredEvent};

/// Batches written and not yet prepared, at most (32 of 4 096 events: some 40 MB). With
/// 4 the writer waited on the preparing thread more often: the 9.67 M-event backfill took
/// 9.95 s against 9.8 s (medians of 4, alternated).
const BATCHES_AHEAD: usize = 32;

/// An event stored by the import, as the engine's tables take it.
struct Written<'a> {
    event: &'a NewEvent,
    id: i64,
    customer: i64,
}

impl EventRow for Written<'_> {
    fn id(&self) -> i64 {
        self.id
    }
    fn customer(&self) -> i64 {
        self.customer
    }
    fn code(&self) -> &EventCode {
        &self.event.event_type
    }
    fn channel(&self) -> &Channel {
        &self.event.channel
    }
    fn timestamp(&self) -> i64 {
        self.event.timestamp
    }
    fn properties(&self) -> &Properties {
        &self.event.properties
    }
}

type Batch = (Vec<NewEvent>, Vec<StoredEvent>);

/// The [`EventSink`] of one import.
pub struct Preparer {
    tx: Option<mpsc::SyncSender<Batch>>,
    thread: Option<JoinHandle<PreparedEvents>>,
}

impl Preparer {
    /// A preparer with its thread; `None` if the thread cannot start.
    pub fn start(import: i64) -> Option<Self> {
        let (tx, rx) = mpsc::sync_channel::<Batch>(BATCHES_AHEAD);
        let thread = std::thread::Builder::new()
            .name(format!("unico-events-import-{import}-prepare"))
            .spawn(move || {
                let mut prepared = PreparedEvents::new();
                for (events, stored) in rx {
                    let rows: Vec<Written<'_>> = stored
                        .iter()
                        .filter_map(|s| {
                            Some(Written {
                                event: events.get(s.index as usize)?,
                                id: s.id,
                                customer: s.customer,
                            })
                        })
                        .collect();
                    prepared.add(&rows);
                    // The batch is freed here, off the writer's thread.
                }
                prepared
            })
            .ok()?;
        Some(Self {
            tx: Some(tx),
            thread: Some(thread),
        })
    }
}

impl EventSink for Preparer {
    fn written(&mut self, events: Vec<NewEvent>, stored: Vec<StoredEvent>) {
        // The thread gone (it failed): nothing more to prepare; `finish` answers nothing.
        if let Some(tx) = &self.tx
            && tx.send((events, stored)).is_err()
        {
            self.tx = None;
        }
    }

    fn finish(mut self: Box<Self>) -> Option<Box<dyn std::any::Any + Send>> {
        let complete = self.tx.take().is_some();
        let prepared = self.thread.take()?.join().ok()?;
        complete.then(|| Box::new(prepared) as Box<dyn std::any::Any + Send>)
    }
}
