//! Writes the hostile inputs of issue 15 (see `fwscan::formats::uefi::hostile`) into a directory, for
//! `benches/hostile.sh`: `cargo run --example hostile -- DIR [--small]`.
//!
//! `DIR/NAME.bin` is a hostile case; `DIR/clean/NAME.bin` is its clean counterpart (the same generator with
//! benign parameters: the same files with 4 KiB sections, or 100 empty files, in a volume of the case's
//! size), the "golden image" that `scan` and `audit` compare the case against.

use fwscan::formats::uefi::hostile::{self, Codec};

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().expect("usage: hostile DIR [--small]"));
    let small = args.next().as_deref() == Some("--small");
    std::fs::create_dir_all(dir.join("clean")).expect("create DIR");
    let write = |name: &str, bytes: Vec<u8>, clean: Vec<u8>| {
        let p = dir.join(name);
        std::fs::write(&p, &bytes).expect("write");
        std::fs::write(dir.join("clean").join(name), &clean).expect("write");
        println!("{} {}", p.display(), bytes.len());
    };
    let (count, size) = if small {
        (20, 1u64 << 20)
    } else {
        (400, 64u64 << 20)
    };
    for codec in Codec::ALL {
        // Tiano/EFI streams claim exactly the per-section cap (a larger claim is refused unread); the
        // in-repo EFI compressor is weak (about 390 KiB per 64 MiB of zeros), so fewer of them keep the
        // image under 64 MiB. Brotli sections are stored (as large as what they hold: 4 MiB each).
        let n = match codec {
            Codec::Tiano | Codec::Efi => count * 3 / 8,
            Codec::Brotli => count / 32,
            _ => count,
        };
        let case = hostile::bomb_volume(codec, n, size);
        let clean = hostile::bomb_volume_sized(codec, n, 4096, case.len());
        write(&format!("bomb-{}-{n}.bin", codec.name()), case, clean);
    }
    let files = if small { 10_000 } else { 1_000_000 };
    write(
        &format!("empty-files-{files}.bin"),
        hostile::empty_files_volume(files, false),
        hostile::empty_files_volume_sized(
            100,
            false,
            hostile::empty_files_volume(files, false).len(),
        ),
    );
    let same = if small { 2_000 } else { 200_000 };
    write(
        &format!("same-guid-files-{same}.bin"),
        hostile::empty_files_volume(same, true),
        hostile::empty_files_volume_sized(100, true, hostile::empty_files_volume(same, true).len()),
    );
    let ovmf = if small { 1_000 } else { 152_000 };
    write(
        &format!("empty-files-{ovmf}.bin"),
        hostile::empty_files_volume(ovmf, false),
        hostile::empty_files_volume_sized(
            100,
            false,
            hostile::empty_files_volume(ovmf, false).len(),
        ),
    );
}
