//! A VictoriaMetrics cluster tenant (`accountID:projectID`): how it is written in a push path, in
//! a forwarding URL, and in a queue directory name.
//!
//! Parsing follows VictoriaMetrics' `lib/auth` (`Token.Init`) exactly: one or two parts split on
//! `:`, each parsed as Go's `strconv.ParseUint(s, 10, 32)` does: one or more ASCII digits (leading
//! zeros allowed), no sign, no spaces, no underscores, at most 4294967295. A missing project is 0.

use std::fmt;
use std::str::FromStr;

/// One tenant of a vminsert cluster. [`Tenant::default`] is `0:0`, where vmagent puts data pushed
/// without a tenant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tenant {
    pub account_id: u32,
    pub project_id: u32,
}

/// Why a tenant id was refused; `Display` is one line naming the offending part, as
/// VictoriaMetrics' messages do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantError {
    /// More than one `:` (VictoriaMetrics wants `accountID` or `accountID:projectID`).
    #[error(
        "tenant {text:?} has {parts} parts separated by ':'; want accountID or accountID:projectID"
    )]
    TooManyParts { text: String, parts: usize },
    /// The account or project is empty, has a character other than a digit, or exceeds 2^32-1.
    #[error("cannot parse {which} from {part:?} in tenant {text:?}: {why}")]
    BadNumber {
        which: &'static str,
        part: String,
        text: String,
        why: &'static str,
    },
}

impl Tenant {
    /// The tenant `account_id:project_id`.
    pub const fn new(account_id: u32, project_id: u32) -> Self {
        Tenant {
            account_id,
            project_id,
        }
    }

    /// The name of this tenant's queue directory beside its storage's: `<storage-id>-tenant-<a>-<p>`,
    /// with both numbers in decimal without leading zeros. Frozen: changing it orphans tenant queues.
    pub fn queue_dir_name(&self, storage_id: &str) -> String {
        format!(
            "{storage_id}{TENANT_DIR_INFIX}{}-{}",
            self.account_id, self.project_id
        )
    }

    /// The tenant whose queue directory `dir_name` is, when it belongs to `storage_id` and is in
    /// the exact form [`Tenant::queue_dir_name`] writes (anything else is not ours: `None`).
    pub fn from_queue_dir_name(storage_id: &str, dir_name: &str) -> Option<Tenant> {
        let rest = dir_name
            .strip_prefix(storage_id)?
            .strip_prefix(TENANT_DIR_INFIX)?;
        let (a, p) = rest.split_once('-')?;
        let tenant = Tenant::new(parse_u32(a).ok()?, parse_u32(p).ok()?);
        // Only the canonical spelling: `007-0` is not a directory we would have made.
        (tenant.queue_dir_name(storage_id) == dir_name).then_some(tenant)
    }
}

/// Between a storage id and a tenant in a tenant queue's directory name. A storage id ends in 16
/// hex digits, so no storage id and no other storage's tenant directory has this form.
const TENANT_DIR_INFIX: &str = "-tenant-";

/// `account:project`, always with both parts (the form vmagent forwards to and the status shows).
impl fmt::Display for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.account_id, self.project_id)
    }
}

impl FromStr for Tenant {
    type Err = TenantError;

    fn from_str(text: &str) -> Result<Self, TenantError> {
        let parts = text.split(':').count();
        if parts > 2 {
            return Err(TenantError::TooManyParts {
                text: text.to_owned(),
                parts,
            });
        }
        let (account, project) = match text.split_once(':') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let number = |which: &'static str, part: &str| {
            parse_u32(part).map_err(|why| TenantError::BadNumber {
                which,
                part: part.to_owned(),
                text: text.to_owned(),
                why,
            })
        };
        let account_id = number("accountID", account)?;
        let project_id = match project {
            Some(p) => number("projectID", p)?,
            None => 0,
        };
        Ok(Tenant::new(account_id, project_id))
    }
}

/// Go's `strconv.ParseUint(s, 10, 32)`: digits only, at least one, at most `u32::MAX`.
fn parse_u32(s: &str) -> Result<u32, &'static str> {
    if s.is_empty() {
        return Err("empty");
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err("not a decimal number");
    }
    // Digits only, so the only possible failure left is the range.
    s.parse::<u32>()
        .map_err(|_| "out of range (max 4294967295)")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(s: &str) -> Result<(u32, u32), TenantError> {
        s.parse::<Tenant>().map(|t| (t.account_id, t.project_id))
    }

    #[test]
    fn forms_victoriametrics_accepts_parse_to_account_and_project() {
        assert_eq!(parsed("0").unwrap(), (0, 0));
        assert_eq!(parsed("42").unwrap(), (42, 0));
        assert_eq!(parsed("1:2").unwrap(), (1, 2));
        assert_eq!(parsed("007:08").unwrap(), (7, 8), "leading zeros");
        assert_eq!(
            parsed("4294967295:4294967295").unwrap(),
            (u32::MAX, u32::MAX)
        );
    }

    #[test]
    fn forms_victoriametrics_refuses_are_refused() {
        // VictoriaMetrics' own refusals (lib/auth/auth_test.go) and Go ParseUint's.
        for bad in [
            "",
            ":",
            "a:b",
            "1:",
            ":2",
            "::",
            "a:b:c",
            "1:2:3",
            "4294967296",
            "1:4294967296",
            "-1",
            "+1",
            " 1",
            "1 ",
            "1_000",
            "0x10",
            "1.5",
            "multitenant",
            "١",
        ] {
            assert!(parsed(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn refusal_names_the_part_and_why() {
        let e = "1:x".parse::<Tenant>().unwrap_err().to_string();
        assert_eq!(
            e,
            r#"cannot parse projectID from "x" in tenant "1:x": not a decimal number"#
        );
        let e = "1:2:3".parse::<Tenant>().unwrap_err().to_string();
        assert!(e.contains("3 parts"), "{e}");
        let e = "99999999999".parse::<Tenant>().unwrap_err().to_string();
        assert!(e.contains("accountID") && e.contains("out of range"), "{e}");
    }

    #[test]
    fn display_always_shows_both_parts() {
        assert_eq!(Tenant::new(5, 0).to_string(), "5:0");
        assert_eq!(Tenant::default().to_string(), "0:0");
    }

    #[test]
    fn queue_dir_name_is_pinned_and_round_trips() {
        // Golden: changing this orphans every tenant queue on disk.
        let id = "vminsert-8480-0123456789abcdef";
        let t = Tenant::new(12, 3);
        assert_eq!(
            t.queue_dir_name(id),
            "vminsert-8480-0123456789abcdef-tenant-12-3"
        );
        assert_eq!(
            Tenant::from_queue_dir_name(id, &t.queue_dir_name(id)),
            Some(t)
        );
    }

    #[test]
    fn directories_not_in_the_exact_form_are_not_tenant_queues() {
        let id = "vm-8480-0123456789abcdef";
        for other in [
            "vm-8480-0123456789abcdef",
            "vm-8480-0123456789abcdef-tenant-1",
            "vm-8480-0123456789abcdef-tenant-01-2",
            "vm-8480-0123456789abcdef-tenant-1-2-3",
            "vm-8480-0123456789abcdef-tenant-1:2",
            "vm-8480-fedcba9876543210-tenant-1-2",
            "other-0123456789abcdef-tenant-1-2",
        ] {
            assert_eq!(Tenant::from_queue_dir_name(id, other), None, "{other}");
        }
    }
}
