//! What the API server accepts as a label value and as an object name, and how the suite makes
//! names for the objects it generates.
//!
//! A chart release with one invalid label value or name is rejected whole, so every value the
//! suite adds is checked here first. Rules from Kubernetes' apimachinery validation
//! (`k8s.io/apimachinery/pkg/util/validation/validation.go`: `IsValidLabelValue`,
//! `IsDNS1123Subdomain`, `IsDNS1123Label`), documented in
//! <https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#syntax-and-character-set>
//! and <https://kubernetes.io/docs/concepts/overview/working-with-objects/names/>.

/// Longest label value and longest DNS-1123 label.
pub const MAX_LABEL: usize = 63;

fn alnum(c: u8) -> bool {
    c.is_ascii_alphanumeric()
}

/// A label value: empty, or at most 63 characters of `[A-Za-z0-9_.-]` that begin and end with an
/// alphanumeric character.
pub fn is_valid_label_value(v: &str) -> bool {
    let b = v.as_bytes();
    b.is_empty()
        || (b.len() <= MAX_LABEL
            && alnum(b[0])
            && alnum(b[b.len() - 1])
            && b.iter()
                .all(|&c| alnum(c) || matches!(c, b'-' | b'_' | b'.')))
}

/// A DNS-1123 label (names of Namespaces, Services): at most 63 lower-case alphanumerics or `-`,
/// alphanumeric at both ends.
pub fn is_dns1123_label(v: &str) -> bool {
    let b = v.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_LABEL
        && alnum(b[0])
        && alnum(b[b.len() - 1])
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
}

/// FNV-1a: a short, stable hash that does not change between releases of the suite (a
/// generated name must be the same on every run, or `helm upgrade` would replace objects).
fn fnv1a(s: &str) -> u32 {
    let h = s.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    h as u32
}

/// A generated object name that is a valid DNS-1123 subdomain of at most 63 characters (what
/// NetworkPolicies, AuthorizationPolicies and most kinds accept): `base` lower-cased, characters
/// outside `[a-z0-9.-]` replaced by `-`, and when longer than 63 characters cut to 54 and
/// suffixed with `-` and eight hex digits of a hash of the whole original, so that two long
/// names that share a prefix stay distinct. Never empty.
pub fn generated_name(base: &str) -> String {
    let clean = clean_name(base);
    if clean.is_empty() {
        return format!("x-{:08x}", fnv1a(base));
    }
    if clean.len() <= MAX_LABEL {
        return clean;
    }
    format!(
        "{}-{:08x}",
        clean[..54].trim_end_matches(['-', '.']),
        fnv1a(base)
    )
}

/// [`generated_name`] of `<base>-<suffix>` that keeps `-<suffix>` whole at its end (a policy's
/// `-ingress` or `-egress` says what it is): when the whole is too long, `base` is cut and
/// followed by eight hex digits of a hash of the whole, then the suffix. `suffix` is a short
/// lower-case DNS label.
pub fn generated_name_ending(base: &str, suffix: &str) -> String {
    let whole = format!("{base}-{suffix}");
    let name = generated_name(&whole);
    if name.ends_with(&format!("-{suffix}")) {
        return name;
    }
    let clean = clean_name(base);
    let room = MAX_LABEL.saturating_sub(suffix.len() + 1 + 9);
    let cut = clean[..clean.len().min(room)].trim_end_matches(['-', '.']);
    let cut = if cut.is_empty() { "x" } else { cut };
    format!("{cut}-{:08x}-{suffix}", fnv1a(&whole))
}

/// `base` lower-cased, characters outside `[a-z0-9.-]` replaced by `-`, trimmed to begin and end
/// with an alphanumeric character.
fn clean_name(base: &str) -> String {
    let mut clean: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    if !clean.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !clean.ends_with(|c: char| c.is_ascii_alphanumeric())
    {
        clean = clean.trim_matches(['-', '.']).to_string();
    }
    clean
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_as_the_api_server_checks_them() {
        for ok in ["", "a", "1.2.3", "v1_beta-2", &"x".repeat(63)] {
            assert!(is_valid_label_value(ok), "{ok:?}");
        }
        for bad in [
            "-a",
            "a-",
            "_a",
            "a_",
            ".a",
            "a b",
            "a/b",
            &"x".repeat(64),
            "é",
        ] {
            assert!(!is_valid_label_value(bad), "{bad:?}");
        }
    }

    #[test]
    fn dns_labels() {
        assert!(is_dns1123_label("shop-api-1"));
        for bad in ["", "Shop", "a.b", "-a", "a-", &"x".repeat(64)] {
            assert!(!is_dns1123_label(bad), "{bad:?}");
        }
    }

    #[test]
    fn generated_names_are_valid_stable_and_distinct() {
        assert_eq!(generated_name("shop-api-ingress"), "shop-api-ingress");
        assert_eq!(generated_name("Shop_API.v2"), "shop-api.v2");
        let a = generated_name(&format!("{}-a", "x".repeat(80)));
        let b = generated_name(&format!("{}-b", "x".repeat(80)));
        assert!(is_dns1123_label(&a) && is_dns1123_label(&b), "{a} {b}");
        assert_eq!(a.len(), 63);
        assert_ne!(a, b);
        assert_eq!(a, generated_name(&format!("{}-a", "x".repeat(80))));
        assert!(is_dns1123_label(&generated_name("---")));
        assert_eq!(generated_name(".a."), "a");
    }

    #[test]
    fn generated_names_keep_their_ending() {
        assert_eq!(
            generated_name_ending("shop-api", "egress"),
            "shop-api-egress"
        );
        let long = "x".repeat(80);
        let (i, e) = (
            generated_name_ending(&long, "ingress"),
            generated_name_ending(&long, "egress"),
        );
        for n in [&i, &e] {
            assert!(is_dns1123_label(n) && n.len() <= MAX_LABEL, "{n}");
        }
        assert!(
            i.ends_with("-ingress") && e.ends_with("-egress") && i != e,
            "{i} {e}"
        );
        assert_ne!(generated_name_ending(&format!("{long}a"), "egress"), e);
        assert_eq!(generated_name_ending(&long, "egress"), e);
        assert!(generated_name_ending("---", "egress").ends_with("-egress"));
    }
}
