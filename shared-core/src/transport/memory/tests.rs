use std::time::Duration;

use fieldlink_protocol::gatt::{AdvertisedState, ServiceData};
use tokio::sync::watch;

use super::*;
use crate::transport::{DisconnectReason, LinkEvent};

const SERVICE: u128 = 0x1234;

fn advert(discriminator: u16) -> RadioAdvertisement {
    let data = ServiceData {
        protocol_version: 1,
        discriminator,
        state: AdvertisedState::Commissionable,
    };
    RadioAdvertisement {
        local_name: format!("FL-{discriminator:03x}"),
        service_uuids: vec![SERVICE],
        service_data: data.encode().to_vec(),
    }
}

/// A peripheral that echoes every frame back as a notification.
fn echo_radio(model: LinkModel) -> (InMemoryRadio, PeripheralId, watch::Sender<u16>) {
    let radio = InMemoryRadio::new(model);
    let (adv_tx, adv_rx) = watch::channel(0x0abc_u16);
    let id = radio.register_peripheral(
        adv_rx,
        |d: &u16| advert(*d),
        |link: PeripheralLink| {
            tokio::spawn(async move {
                let PeripheralLink {
                    mut from_central,
                    to_central,
                    ..
                } = link;
                while let Some(frame) = from_central.recv().await {
                    if frame == b"bye" {
                        break;
                    }
                    if to_central.send(frame).await.is_err() {
                        break;
                    }
                }
            });
        },
    );
    (radio, id, adv_tx)
}

fn filter(discriminator: Option<u16>) -> ScanFilter {
    ScanFilter {
        service_uuid: SERVICE,
        discriminator,
    }
}

#[tokio::test(start_paused = true)]
async fn scan_filters_by_service_and_discriminator_and_follows_the_watch() {
    let (radio, id, adv_tx) = echo_radio(LinkModel::default());
    let found = radio
        .scan(filter(Some(0xabc)), Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, id);
    assert_eq!(found[0].rssi, Some(-60));
    assert_eq!(found[0].local_name.as_deref(), Some("FL-abc"));
    assert_eq!(found[0].state(), Some(AdvertisedState::Commissionable));

    adv_tx.send(0x123).unwrap();
    let started = tokio::time::Instant::now();
    let found = radio
        .scan(filter(Some(0xabc)), Duration::from_secs(2))
        .await
        .unwrap();
    assert!(found.is_empty());
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "waits out the timeout"
    );

    let other = ScanFilter {
        service_uuid: 0x9999,
        discriminator: None,
    };
    assert!(
        radio
            .scan(other, Duration::from_millis(200))
            .await
            .unwrap()
            .is_empty()
    );

    radio.set_in_range(&id, false);
    assert!(
        radio
            .scan(filter(None), Duration::from_millis(200))
            .await
            .unwrap()
            .is_empty()
    );
    let err = radio
        .connect(id, Duration::from_secs(1))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, TransportError::NotFound(_)));
}

#[tokio::test(start_paused = true)]
async fn frames_flow_both_ways_with_one_interval_per_frame_and_are_counted() {
    let model = LinkModel {
        mtu: 23,
        ..LinkModel::default()
    };
    let (radio, id, _adv) = echo_radio(model);
    let conn = radio.connect(id, Duration::from_secs(1)).await.unwrap();
    assert_eq!(conn.mtu(), 23);
    let started = tokio::time::Instant::now();
    conn.write(vec![0x01, 0, 1, 2]).await.unwrap();
    conn.write(vec![0x00, 1, 3]).await.unwrap();
    assert_eq!(
        conn.next_event().await,
        LinkEvent::Notification(vec![0x01, 0, 1, 2])
    );
    assert_eq!(
        conn.next_event().await,
        LinkEvent::Notification(vec![0x00, 1, 3])
    );
    // Two uplink intervals, then the second echo trails the second write by one interval.
    assert_eq!(started.elapsed(), Duration::from_millis(90));
    conn.write(vec![0x01, 2]).await.unwrap();
    assert_eq!(
        conn.next_event().await,
        LinkEvent::Notification(vec![0x01, 2])
    );

    let stats = radio.stats();
    assert_eq!(stats.connections, 1);
    assert_eq!(stats.round_trips, 2);
    assert_eq!(stats.frames_to_peripheral, 3);
    assert_eq!(stats.frames_to_central, 3);
    assert_eq!(stats.bytes_to_peripheral, 9);
    assert_eq!(stats.bytes_to_central, 9);
    assert_eq!(stats.messages_to_peripheral, 2);
    assert_eq!(stats.air_time, Duration::from_millis(180));
    radio.reset_stats();
    assert_eq!(radio.stats(), LinkStats::default());
}

#[tokio::test(start_paused = true)]
async fn oversized_frames_are_refused() {
    let (radio, id, _adv) = echo_radio(LinkModel {
        mtu: 23,
        ..LinkModel::default()
    });
    let conn = radio.connect(id, Duration::from_secs(1)).await.unwrap();
    let err = conn.write(vec![0; 21]).await.unwrap_err();
    assert_eq!(err, TransportError::FrameTooLarge { len: 21, limit: 20 });
    conn.write(vec![0; 20]).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn disconnect_fault_closes_both_ends() {
    let radio = InMemoryRadio::new(LinkModel::default());
    let (_adv_tx, adv_rx) = watch::channel(1_u16);
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    let id = radio.register_peripheral(
        adv_rx,
        |d: &u16| advert(*d),
        move |link: PeripheralLink| {
            let seen = seen_tx.clone();
            tokio::spawn(async move {
                // Holding `to_central` keeps the link up: dropping it is a disconnect.
                let PeripheralLink {
                    mut from_central,
                    to_central: _keep,
                    ..
                } = link;
                while let Some(frame) = from_central.recv().await {
                    let _ = seen.send(Some(frame));
                }
                let _ = seen.send(None);
            });
        },
    );
    let fault = Fault {
        direction: Direction::ToPeripheral,
        at: FaultPoint::Frame(1),
        action: FaultAction::Disconnect,
    };
    assert!(radio.arm_fault(&id, fault));
    let conn = radio
        .connect(id.clone(), Duration::from_secs(1))
        .await
        .unwrap();
    conn.write(vec![1]).await.unwrap();
    assert_eq!(conn.write(vec![2]).await, Err(TransportError::Disconnected));
    assert_eq!(seen_rx.recv().await, Some(Some(vec![1])));
    assert_eq!(
        seen_rx.recv().await,
        Some(None),
        "device sees the channel close"
    );
    assert_eq!(
        conn.next_event().await,
        LinkEvent::Disconnected {
            reason: DisconnectReason::LinkLoss
        }
    );
    assert_eq!(conn.write(vec![3]).await, Err(TransportError::Disconnected));

    // One-shot: the next connection is clean.
    let conn = radio.connect(id, Duration::from_secs(1)).await.unwrap();
    conn.write(vec![1]).await.unwrap();
    conn.write(vec![2]).await.unwrap();
    assert_eq!(seen_rx.recv().await, Some(Some(vec![1])));
    assert_eq!(seen_rx.recv().await, Some(Some(vec![2])));
    conn.disconnect().await;
    assert_eq!(
        conn.next_event().await,
        LinkEvent::Disconnected {
            reason: DisconnectReason::Local
        }
    );
    assert_eq!(seen_rx.recv().await, Some(None));
}

#[tokio::test(start_paused = true)]
async fn message_drop_fault_drops_every_frame_of_that_message() {
    let (radio, id, _adv) = echo_radio(LinkModel::default());
    let fault = Fault {
        direction: Direction::ToCentral,
        at: FaultPoint::Message(1),
        action: FaultAction::Drop,
    };
    radio.arm_fault(&id, fault);
    let conn = radio.connect(id, Duration::from_secs(1)).await.unwrap();
    // Message 0: one frame; message 1: BEGIN + continuation; message 2.
    for frame in [vec![0x01, 0], vec![0x01, 1], vec![0x00, 2], vec![0x01, 3]] {
        conn.write(frame).await.unwrap();
    }
    assert_eq!(
        conn.next_event().await,
        LinkEvent::Notification(vec![0x01, 0])
    );
    assert_eq!(
        conn.next_event().await,
        LinkEvent::Notification(vec![0x01, 3])
    );
    assert_eq!(radio.stats().dropped_frames, 2);
}

#[tokio::test(start_paused = true)]
async fn peripheral_closing_is_a_remote_disconnect() {
    let (radio, id, _adv) = echo_radio(LinkModel::default());
    let conn = radio.connect(id, Duration::from_secs(1)).await.unwrap();
    conn.write(b"bye".to_vec()).await.unwrap();
    assert_eq!(
        conn.next_event().await,
        LinkEvent::Disconnected {
            reason: DisconnectReason::Remote
        }
    );
}
