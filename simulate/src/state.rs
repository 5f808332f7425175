//! The layout of a rank's saved state shared by both backends
//! ([`Engine::save_state`](crate::engine::Engine::save_state) documents it):
//! the `engine/step` and `engine/layout` sections and the ring buffers, rows
//! in order of arrival step starting with the current step. A state saved
//! by one backend restores on the other.

use snn_formats::checkpoint::Section;

use crate::SimError;

/// The sections of a ring buffer pair.
pub(crate) const RING_SECTIONS: [&str; 2] = ["engine/ring_ex", "engine/ring_in"];

/// An error about a saved state.
pub(crate) fn bad_state(what: &str) -> SimError {
    SimError::Invalid(format!("checkpoint state: {what}"))
}

/// The `engine/step` and `engine/layout` sections.
pub(crate) fn header_sections(step: u64, n_local: usize, slots: u64) -> Vec<Section> {
    vec![
        Section::new("engine/step", step.to_le_bytes().to_vec()),
        Section::new(
            "engine/layout",
            [n_local as u64, slots]
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
        ),
    ]
}

/// A ring buffer's section: `cell(i)` is element `i` of the slot-major
/// ring (`slots` rows of `n_local`), written with the row of `step` first.
pub(crate) fn ring_section(
    name: &str,
    step: u64,
    slots: u64,
    n_local: usize,
    cell: impl Fn(usize) -> i64,
) -> Section {
    let mut b = Vec::with_capacity(slots as usize * n_local * 8);
    for k in 0..slots {
        let row = ((step + k) % slots) as usize * n_local;
        for i in row..row + n_local {
            b.extend_from_slice(&cell(i).to_le_bytes());
        }
    }
    Section::new(name, b)
}

/// The saved step and the two ring sections, checked against this rank's
/// `n_local` and `slots`.
pub(crate) fn read_header<'s>(
    get: &dyn Fn(&str) -> Option<&'s [u8]>,
    n_local: usize,
    slots: u64,
) -> Result<(u64, [&'s [u8]; 2]), SimError> {
    let section = |name: &str, len: usize| -> Result<&'s [u8], SimError> {
        let b = get(name).ok_or_else(|| bad_state(&format!("section {name} missing")))?;
        if b.len() != len {
            return Err(bad_state(&format!("section {name} has the wrong size")));
        }
        Ok(b)
    };
    let words = |b: &[u8]| -> Vec<u64> {
        b.chunks_exact(8)
            .map(|c| {
                let mut w = [0u8; 8];
                w.copy_from_slice(c);
                u64::from_le_bytes(w)
            })
            .collect()
    };
    let step = words(section("engine/step", 8)?)[0];
    let layout = words(section("engine/layout", 16)?);
    if layout != [n_local as u64, slots] {
        return Err(bad_state(&format!(
            "saved for {} local neurons and {} ring slots, this rank has {} and {} (a different network or rank)",
            layout[0], layout[1], n_local, slots
        )));
    }
    let ring_bytes = slots as usize * n_local * 8;
    Ok((
        step,
        [
            section(RING_SECTIONS[0], ring_bytes)?,
            section(RING_SECTIONS[1], ring_bytes)?,
        ],
    ))
}

/// Puts a ring section saved at `step` back: `set(i, value)` for every
/// element `i` of the slot-major ring.
pub(crate) fn unpack_ring(
    bytes: &[u8],
    step: u64,
    slots: u64,
    n_local: usize,
    mut set: impl FnMut(usize, i64),
) {
    for (k, src) in bytes.chunks_exact(n_local.max(1) * 8).enumerate() {
        let row = ((step + k as u64) % slots) as usize * n_local;
        for (j, c) in src.chunks_exact(8).enumerate() {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            set(row + j, i64::from_le_bytes(w));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ring saved at one step and read back at that step is the same
    /// ring; the section starts with the row of the step.
    #[test]
    fn ring_round_trip() {
        let (slots, n) = (5u64, 3usize);
        let ring: Vec<i64> = (0..slots as i64 * n as i64).map(|i| i * 7 - 20).collect();
        for step in [0u64, 3, 4, 12] {
            let s = ring_section("x", step, slots, n, |i| ring[i]);
            let first_row = (step % slots) as usize * n;
            assert_eq!(s.data[..8], ring[first_row].to_le_bytes());
            let mut back = vec![0i64; ring.len()];
            unpack_ring(&s.data, step, slots, n, |i, v| back[i] = v);
            assert_eq!(back, ring);
        }
        let sections: Vec<Section> = header_sections(9, n, slots)
            .into_iter()
            .chain(RING_SECTIONS.map(|r| ring_section(r, 9, slots, n, |i| ring[i])))
            .collect();
        let get = |name: &str| {
            sections
                .iter()
                .find(|s| s.name == name)
                .map(|s| &s.data[..])
        };
        let (step, rings) = read_header(&get, n, slots).expect("header");
        assert_eq!(step, 9);
        assert_eq!(rings[1].len(), ring.len() * 8);
        let e = read_header(&get, n + 1, slots).err().map(|e| e.to_string());
        assert!(e.is_some_and(|m| m.contains("a different network or rank")));
    }
}
