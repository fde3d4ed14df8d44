//! Rendering settings for computers without a GPU (Linux).
//!
//! Without a DRM render node (`/dev/dri/renderD*`) every GL context is Mesa's software
//! rasteriser (llvmpipe). WebKitGTK's DMA-BUF renderer then only adds buffers to copy, and GDK's
//! GL probing only adds memory, so both are turned off before GTK starts. With a GPU nothing is
//! changed, and a variable already set in the environment always wins.

use std::path::Path;

/// The variables set when GL is software: WebKitGTK composites through shared memory instead of
/// DMA-BUF, and GDK does not probe GL (the window never uses it).
pub const SOFTWARE_GL_ENV: [(&str, &str); 2] = [
    ("WEBKIT_DISABLE_DMABUF_RENDERER", "1"),
    ("GDK_GL", "disable"),
];

/// Whether `dri` (normally `/dev/dri`) holds a render node, i.e. GL can run on a GPU.
pub fn has_render_node(dri: &Path) -> bool {
    std::fs::read_dir(dri).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|entry| entry.file_name().to_string_lossy().starts_with("renderD"))
    })
}

/// The variables to set: [`SOFTWARE_GL_ENV`] minus those already set, or nothing when there is
/// a render node.
pub fn variables_to_set(
    render_node: bool,
    is_set: impl Fn(&str) -> bool,
) -> Vec<(&'static str, &'static str)> {
    if render_node {
        return Vec::new();
    }
    SOFTWARE_GL_ENV
        .into_iter()
        .filter(|(name, _)| !is_set(name))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_render_node_means_a_gpu() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!has_render_node(dir.path()));
        assert!(!has_render_node(&dir.path().join("missing")));
        std::fs::write(dir.path().join("card0"), b"").unwrap();
        assert!(!has_render_node(dir.path()));
        std::fs::write(dir.path().join("renderD128"), b"").unwrap();
        assert!(has_render_node(dir.path()));
    }

    #[test]
    fn software_gl_sets_only_what_the_user_did_not() {
        assert!(variables_to_set(true, |_| false).is_empty());
        assert_eq!(variables_to_set(false, |_| false), SOFTWARE_GL_ENV.to_vec());
        assert_eq!(
            variables_to_set(false, |name| name == "GDK_GL"),
            vec![("WEBKIT_DISABLE_DMABUF_RENDERER", "1")]
        );
    }
}
