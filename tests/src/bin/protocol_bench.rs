//! Prints the round trips, bytes each way and modelled air time of one commissioning, from
//! "connected" to "confirmed" (the DPS wait excluded: air time counts only frames), for MTU 23,
//! 185 and 247 at a 30 ms connection interval, with and without the network step.
//!
//! `cargo run -p fieldlink-tests --release --bin protocol-bench`

use std::time::Duration;

use fieldlink_core::transport::memory::LinkModel;
use fieldlink_device_agent::network::SimulatedNetwork;
use fieldlink_protocol::message::NetworkConfig;
use fieldlink_tests::world::{World, WorldConfig};

const SSID: &str = "bench-site";
const PASSPHRASE: &str = "correct horse battery";

struct Row {
    mtu: u16,
    network: bool,
    round_trips: u32,
    frames_up: u32,
    frames_down: u32,
    bytes_up: u64,
    bytes_down: u64,
    air_time: Duration,
}

async fn measure(mtu: u16, network: bool) -> Row {
    let config = WorldConfig {
        link: LinkModel {
            mtu,
            connection_interval: Duration::from_millis(30),
            ..LinkModel::default()
        },
        networks: if network {
            vec![SimulatedNetwork::wpa2(SSID, PASSPHRASE)]
        } else {
            Vec::new()
        },
        ..WorldConfig::default()
    };
    let world = World::start(config).await;
    let wifi = network.then(|| NetworkConfig::Wifi {
        ssid: SSID.into(),
        passphrase: PASSPHRASE.into(),
        hidden: false,
        bssid: None,
    });
    world.radio.reset_stats();
    let report = world
        .commission(0, wifi)
        .await
        .expect("the bench commissioning succeeds");
    let stats = world.radio.stats();
    assert_eq!(
        stats.round_trips, report.link.round_trips,
        "radio and workflow agree"
    );
    world.shutdown().await;
    Row {
        mtu,
        network,
        round_trips: stats.round_trips,
        frames_up: stats.frames_to_peripheral,
        frames_down: stats.frames_to_central,
        bytes_up: stats.bytes_to_peripheral,
        bytes_down: stats.bytes_to_central,
        air_time: stats.air_time,
    }
}

#[tokio::main]
async fn main() {
    let mut out = String::from(
        "| ATT MTU | network step | client round trips | frames ↑/↓ | bytes installer→device | bytes device→installer | modelled air time |\n\
         |---:|:---:|---:|---:|---:|---:|---:|\n",
    );
    for network in [false, true] {
        for mtu in [23, 185, 247] {
            let row = measure(mtu, network).await;
            out.push_str(&format!(
                "| {} | {} | {} | {}/{} | {} | {} | {} ms |\n",
                row.mtu,
                if row.network { "yes" } else { "no" },
                row.round_trips,
                row.frames_up,
                row.frames_down,
                row.bytes_up,
                row.bytes_down,
                row.air_time.as_millis(),
            ));
        }
    }
    out.push_str("\nconnection interval 30 ms; air time = frames × interval (one ATT PDU per connection event)\n");
    #[allow(clippy::print_stdout)]
    {
        print!("{out}");
    }
}
