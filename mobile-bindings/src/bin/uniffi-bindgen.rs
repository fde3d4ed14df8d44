//! uniffi-bindgen for this crate: `uniffi-bindgen generate <libfieldlink_mobile.so> --language
//! kotlin|swift|python --out-dir <dir>` (library mode). `scripts/gen-bindings.sh` runs it.

fn main() {
    uniffi::uniffi_bindgen_main()
}
