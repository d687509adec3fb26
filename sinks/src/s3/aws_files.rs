//! The usual AWS files: credentials from `~/.aws/credentials` (or
//! `$AWS_SHARED_CREDENTIALS_FILE`) and the region from `~/.aws/config` (or
//! `$AWS_CONFIG_FILE`), for the profile `$AWS_PROFILE` (default `default`). They are read
//! only when the environment does not give the same setting: `AWS_ACCESS_KEY_ID` /
//! `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN` and `AWS_REGION` come first. Without
//! either, the store falls back to the instance's role (ECS / EC2 metadata).

use std::collections::HashMap;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileCredentials {
    pub key_id: String,
    pub secret_key: String,
    pub token: Option<String>,
}

/// `[section]` → key → value, for an INI file as the AWS tools write it.
pub fn parse_ini(text: &str) -> HashMap<String, HashMap<String, String>> {
    let mut out: HashMap<String, HashMap<String, String>> = HashMap::new();
    let mut section = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_string();
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            out.entry(section.clone()).or_default().insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    out
}

fn profile() -> String {
    std::env::var("AWS_PROFILE").ok().filter(|p| !p.is_empty()).unwrap_or_else(|| "default".to_string())
}

fn aws_file(env: &str, name: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".aws").join(name))
}

/// Credentials of the profile from the shared credentials file, if it has them.
pub fn credentials() -> Option<FileCredentials> {
    let text = std::fs::read_to_string(aws_file("AWS_SHARED_CREDENTIALS_FILE", "credentials")?).ok()?;
    credentials_from(&text, &profile())
}

pub fn credentials_from(text: &str, profile: &str) -> Option<FileCredentials> {
    let ini = parse_ini(text);
    let s = ini.get(profile)?;
    Some(FileCredentials {
        key_id: s.get("aws_access_key_id")?.clone(),
        secret_key: s.get("aws_secret_access_key")?.clone(),
        token: s.get("aws_session_token").cloned(),
    })
}

/// The profile's region from the config file (`[default]` or `[profile NAME]`).
pub fn region() -> Option<String> {
    let text = std::fs::read_to_string(aws_file("AWS_CONFIG_FILE", "config")?).ok()?;
    region_from(&text, &profile())
}

pub fn region_from(text: &str, profile: &str) -> Option<String> {
    let ini = parse_ini(text);
    let section = if profile == "default" { "default".to_string() } else { format!("profile {profile}") };
    ini.get(&section)?.get("region").cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_profiles_as_the_aws_tools_write_them() {
        let creds = "# comment\n[default]\naws_access_key_id = AKIDEFAULT\naws_secret_access_key = s3cr3t\n\n\
                     [ops]\nAWS_ACCESS_KEY_ID=AKIOPS\naws_secret_access_key=x=y\naws_session_token = tok\n";
        assert_eq!(
            credentials_from(creds, "default"),
            Some(FileCredentials { key_id: "AKIDEFAULT".into(), secret_key: "s3cr3t".into(), token: None })
        );
        let ops = credentials_from(creds, "ops").unwrap();
        assert_eq!((ops.secret_key.as_str(), ops.token.as_deref()), ("x=y", Some("tok")));
        assert_eq!(credentials_from(creds, "missing"), None);
        assert_eq!(credentials_from("[default]\naws_access_key_id = A\n", "default"), None);

        let config = "[default]\nregion = eu-west-1\n[profile ops]\nregion=us-east-2\n";
        assert_eq!(region_from(config, "default").as_deref(), Some("eu-west-1"));
        assert_eq!(region_from(config, "ops").as_deref(), Some("us-east-2"));
        assert_eq!(region_from(config, "nope"), None);
    }
}
