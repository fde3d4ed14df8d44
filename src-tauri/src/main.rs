//! The fieldlink desktop app.

// No console window on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    #[cfg(target_os = "linux")]
    software_gl_defaults();
    fieldlink_desktop::run();
}

/// Applies [`fieldlink_desktop::software_gl`]'s settings when there is no GPU.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn software_gl_defaults() {
    use fieldlink_desktop::software_gl::{has_render_node, variables_to_set};
    let render_node = has_render_node(std::path::Path::new("/dev/dri"));
    for (name, value) in variables_to_set(render_node, |name| std::env::var_os(name).is_some()) {
        // SAFETY: the first thing `main` does, before any other thread exists, so nothing reads
        // the environment concurrently.
        unsafe { std::env::set_var(name, value) };
    }
}
