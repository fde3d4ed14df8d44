//! A [`BleTransport`] wrapper that counts what one commissioning sends and receives, so a
//! failed attempt still reports its round trips and bytes over the air.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use async_trait::async_trait;
use fieldlink_core::{
    transport::{
        BleConnection, BleTransport, DiscoveredDevice, LinkEvent, PeripheralId, ScanFilter,
        TransportError,
    },
    workflow::LinkCounters,
};

#[derive(Default)]
struct Tally {
    counters: LinkCounters,
    /// Whether the next write starts a round trip (first write, or after a notification).
    expecting_new_exchange: bool,
}

/// Counts every connection it opens into one [`LinkCounters`].
#[derive(Clone)]
pub struct CountingTransport {
    inner: Arc<dyn BleTransport>,
    tally: Arc<Mutex<Tally>>,
}

impl CountingTransport {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn BleTransport>) -> Self {
        Self {
            inner,
            tally: Arc::new(Mutex::new(Tally::default())),
        }
    }

    /// The counters so far.
    pub fn counters(&self) -> LinkCounters {
        self.tally
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .counters
            .clone()
    }
}

#[async_trait]
impl BleTransport for CountingTransport {
    async fn scan(
        &self,
        filter: ScanFilter,
        timeout: Duration,
    ) -> Result<Vec<DiscoveredDevice>, TransportError> {
        self.inner.scan(filter, timeout).await
    }

    async fn connect(
        &self,
        id: PeripheralId,
        timeout: Duration,
    ) -> Result<Arc<dyn BleConnection>, TransportError> {
        let inner = self.inner.connect(id, timeout).await?;
        {
            let mut tally = self.tally.lock().unwrap_or_else(PoisonError::into_inner);
            tally.counters.connections += 1;
            tally.expecting_new_exchange = true;
        }
        Ok(Arc::new(CountingConnection {
            inner,
            tally: Arc::clone(&self.tally),
        }))
    }
}

struct CountingConnection {
    inner: Arc<dyn BleConnection>,
    tally: Arc<Mutex<Tally>>,
}

#[async_trait]
impl BleConnection for CountingConnection {
    fn mtu(&self) -> u16 {
        self.inner.mtu()
    }

    async fn write(&self, frame: Vec<u8>) -> Result<(), TransportError> {
        let len = u64::try_from(frame.len()).unwrap_or(u64::MAX);
        {
            let mut tally = self.tally.lock().unwrap_or_else(PoisonError::into_inner);
            if tally.expecting_new_exchange {
                tally.counters.round_trips += 1;
                tally.expecting_new_exchange = false;
            }
            tally.counters.frames_sent += 1;
            tally.counters.bytes_sent += len;
        }
        self.inner.write(frame).await
    }

    async fn next_event(&self) -> LinkEvent {
        let event = self.inner.next_event().await;
        if let LinkEvent::Notification(frame) = &event {
            let mut tally = self.tally.lock().unwrap_or_else(PoisonError::into_inner);
            tally.counters.frames_received += 1;
            tally.counters.bytes_received += u64::try_from(frame.len()).unwrap_or(u64::MAX);
            tally.expecting_new_exchange = true;
        }
        event
    }

    async fn disconnect(&self) {
        self.inner.disconnect().await;
    }
}
