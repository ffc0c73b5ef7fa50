//! `k8s::quantity_*`: Kubernetes resource quantities (`512Mi`, `1.5Gi`, `250m`) compared and
//! scaled exactly, so a script can raise a memory limit by half without floating point.

use rhai::plugin::*;

use super::RhaiResult;
use crate::errors::Kind;
use crate::host;

/// Suffixes by family, largest first, with their value in thousandths of a unit.
const BINARY: &[(&str, u128)] = &[
    ("Ei", 1000 << 60),
    ("Pi", 1000 << 50),
    ("Ti", 1000 << 40),
    ("Gi", 1000 << 30),
    ("Mi", 1000 << 20),
    ("Ki", 1000 << 10),
];
const DECIMAL: &[(&str, u128)] = &[
    ("E", 1_000_000_000_000_000_000_000),
    ("P", 1_000_000_000_000_000_000),
    ("T", 1_000_000_000_000_000),
    ("G", 1_000_000_000_000),
    ("M", 1_000_000_000),
    ("k", 1_000_000),
    ("", 1000),
    ("m", 1),
];

/// A quantity in thousandths of a unit (rounded up, as Kubernetes rounds), and the suffix it
/// was written with; `None` for text that is not a quantity kip accepts (no exponents, no
/// sign, at most 9 decimals) or too big to count.
pub fn parse(text: &str) -> Option<(u128, &'static str)> {
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(digits_end);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || fraction.contains('.') || fraction.len() > 9 || whole.len() > 27 {
        return None;
    }
    let (name, unit) = BINARY
        .iter()
        .chain(DECIMAL)
        .find(|(name, _)| *name == suffix)?;
    let scale = 10u128.pow(fraction.len() as u32);
    let mantissa: u128 = format!("{whole}{fraction}").parse().ok()?;
    Some((mantissa.checked_mul(*unit)?.div_ceil(scale), name))
}

/// `millis` written with `preferred` if it is a whole number of those, else with the largest
/// smaller suffix of the same family that is (plain units, then `m`, as the last resort).
pub fn format(millis: u128, preferred: &str) -> String {
    let family = if BINARY.iter().any(|(s, _)| *s == preferred) {
        BINARY
    } else {
        DECIMAL
    };
    let start = family
        .iter()
        .position(|(s, _)| *s == preferred)
        .unwrap_or(0);
    for (suffix, unit) in &family[start..] {
        if millis.is_multiple_of(*unit) {
            return format!("{}{suffix}", millis / unit);
        }
    }
    if millis.is_multiple_of(1000) {
        format!("{}", millis / 1000)
    } else {
        format!("{millis}m")
    }
}

fn parsed(text: &str) -> RhaiResult<(u128, &'static str)> {
    parse(text).ok_or_else(|| {
        host::error(
            Kind::Invalid,
            format!("`{text}` is not a quantity: use a number with an optional unit, like 512Mi, 1.5Gi, 2 or 250m"),
        )
    })
}

// Merged into `k8s` by `super::module`.
#[export_module]
pub mod quantity_module {
    use super::*;

    /// Whether `text` is a Kubernetes quantity kip accepts: a number, an optional fraction
    /// and a unit (`Ki` `Mi` `Gi` `Ti` `Pi` `Ei`, `m` `k` `M` `G` `T` `P` `E`, or none).
    ///
    /// Example: `k8s::is_quantity("1.5Gi") && !k8s::is_quantity("1.5 GB")`
    pub fn is_quantity(text: &str) -> bool {
        parse(text).is_some()
    }

    /// -1, 0 or 1 as quantity `a` is smaller than, equal to or larger than `b`
    /// (`1Gi` equals `1024Mi`).
    ///
    /// Raises `invalid` when either is not a quantity.
    ///
    /// Example: `k8s::quantity_cmp("1Gi", "1000Mi") == 1`
    #[rhai_fn(return_raw)]
    pub fn quantity_cmp(a: &str, b: &str) -> RhaiResult<i64> {
        let (a, b) = (parsed(a)?.0, parsed(b)?.0);
        Ok(a.cmp(&b) as i64)
    }

    /// Quantity `text` times `percent` / 100, rounded up to a thousandth, in `text`'s unit when
    /// the result is a whole number of it, else in a smaller unit of the same family.
    ///
    /// Raises `invalid` when `text` is not a quantity or `percent` is negative.
    ///
    /// Example: `k8s::quantity_percent("512Mi", 150) == "768Mi"`
    #[rhai_fn(return_raw)]
    pub fn quantity_percent(text: &str, percent: i64) -> RhaiResult<String> {
        let (millis, suffix) = parsed(text)?;
        let percent = u128::try_from(percent).map_err(|_| {
            host::error(
                Kind::Invalid,
                format!("{percent}%: a quantity scales by 0% or more"),
            )
        })?;
        Ok(format(millis.saturating_mul(percent).div_ceil(100), suffix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_families_and_fractions() {
        assert_eq!(parse("512Mi"), Some(((512 * 1000) << 20, "Mi")));
        assert_eq!(parse("1.5Gi"), parse("1536Mi").map(|(m, _)| (m, "Gi")));
        assert_eq!(parse("250m"), Some((250, "m")));
        assert_eq!(parse("2"), Some((2000, "")));
        assert_eq!(parse("0.5"), Some((500, "")));
        for bad in [
            "", "Mi", "1.2.3Mi", "1 Gi", "-1Gi", "1GB", "1e3", ".5", "1.5x",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn formats_in_the_preferred_unit_when_whole() {
        assert_eq!(format(parse("768Mi").unwrap().0, "Mi"), "768Mi");
        assert_eq!(format(parse("1536Mi").unwrap().0, "Gi"), "1536Mi");
        assert_eq!(format(parse("3Gi").unwrap().0, "Gi"), "3Gi");
        assert_eq!(format(750, ""), "750m");
        assert_eq!(format(1_500_000, "k"), "1500");
    }

    #[test]
    fn scaling_by_150_percent_matches_the_seed() {
        let half_again = |q: &str| quantity_module::quantity_percent(q, 150).unwrap();
        assert_eq!(half_again("512Mi"), "768Mi");
        assert_eq!(half_again("1Gi"), "1536Mi");
        assert_eq!(half_again("2Gi"), "3Gi");
        assert_eq!(half_again("500m"), "750m");
        assert_eq!(half_again("1"), "1500m");
        assert!(quantity_module::quantity_percent("big", 150).is_err());
    }

    /// Property: scaling never loses size, and a formatted result parses back to the same
    /// amount, for every unit and a spread of numbers.
    #[test]
    fn scaled_quantities_round_trip() {
        let suffixes = ["", "m", "k", "M", "G", "Ki", "Mi", "Gi", "Ti"];
        for n in [1u32, 3, 7, 64, 100, 333, 512, 1000, 4095] {
            for suffix in suffixes {
                for percent in [0i64, 50, 100, 150, 333] {
                    let text = format!("{n}{suffix}");
                    let (before, _) = parse(&text).unwrap();
                    let out = quantity_module::quantity_percent(&text, percent).unwrap();
                    let (after, _) = parse(&out).unwrap_or_else(|| panic!("{out}"));
                    assert!(
                        after * 100 >= before * percent as u128,
                        "{text} {percent}% = {out}"
                    );
                    assert!(
                        after * 100 < before * percent as u128 + 100,
                        "{text} {percent}% = {out}"
                    );
                    assert_eq!(quantity_module::quantity_cmp(&out, &out).unwrap(), 0);
                }
            }
        }
    }
}
