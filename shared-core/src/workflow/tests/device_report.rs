//! The listener hears the device's DPS report before the workflow confirms it, so a shell can
//! journal it with a confirmation it has to queue.

use super::*;

#[derive(Default)]
struct Reports(Mutex<Vec<DeviceRegistration>>);

impl ProgressListener for Reports {
    fn on_progress(&self, _event: ProgressEvent) {}

    fn on_device_report(&self, report: &DeviceRegistration) {
        self.0.lock().unwrap().push(report.clone());
    }
}

#[tokio::test(start_paused = true)]
async fn the_device_report_reaches_the_listener_before_confirming() {
    let rig = rig(247, |_| {}, vec![assigned_view("hub-a.example")]);
    let reports = Reports::default();
    let report = rig
        .commissioner
        .commission(request(&rig.pop, None), &reports, CancellationToken::new())
        .await
        .expect("commissioned");
    let heard = reports.0.lock().unwrap().clone();
    assert_eq!(heard, vec![report.device.clone()]);
    assert_eq!(heard[0].status, "assigned");
    assert_eq!(heard[0].assigned_hub.as_deref(), Some("hub-a.example"));
    assert_eq!(heard[0].device_id.as_deref(), Some("dev-1"));
}
