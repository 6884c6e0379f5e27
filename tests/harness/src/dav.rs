//! A plain CardDAV/CalDAV client for tests to set up and read back what a Radicale or a
//! Xandikos holds, independent of mailshift's own client: PUT, GET, collections made with
//! MKCALENDAR and an extended MKCOL, and the resources of a collection by PROPFIND.

use anyhow::{Result, bail};

use crate::powerdns::http;

/// One user's view of one server.
#[derive(Debug, Clone)]
pub struct DavHttp {
    port: u16,
    authorization: Option<String>,
}

impl DavHttp {
    /// `login` is sent as HTTP Basic (Xandikos ignores it).
    pub fn new(port: u16, login: Option<(&str, &str)>) -> DavHttp {
        DavHttp {
            port,
            authorization: login
                .map(|(u, p)| format!("Basic {}", crate::base64(format!("{u}:{p}").as_bytes()))),
        }
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, &[u8])>,
    ) -> Result<(u16, String)> {
        let mut all: Vec<(&str, &str)> = Vec::new();
        if let Some(a) = &self.authorization {
            all.push(("Authorization", a));
        }
        all.extend_from_slice(headers);
        http(self.port, method, path, &all, body)
    }

    /// PUT `body` at `path`; the HTTP status.
    pub fn put(&self, path: &str, content_type: &str, body: &str) -> Result<u16> {
        Ok(self
            .request("PUT", path, &[], Some((content_type, body.as_bytes())))?
            .0)
    }

    pub fn get(&self, path: &str) -> Result<(u16, String)> {
        self.request("GET", path, &[], None)
    }

    /// A calendar at `path` (ending in `/`) with a display name and a color.
    pub fn mkcalendar(&self, path: &str, name: &str, color: &str) -> Result<()> {
        let body = format!(
            r#"<?xml version="1.0" encoding="utf-8"?>
<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:A="http://apple.com/ns/ical/">
  <D:set><D:prop><D:displayname>{name}</D:displayname><A:calendar-color>{color}</A:calendar-color></D:prop></D:set>
</C:mkcalendar>"#
        );
        let (status, text) = self.request(
            "MKCALENDAR",
            path,
            &[],
            Some(("application/xml; charset=utf-8", body.as_bytes())),
        )?;
        if status != 201 {
            bail!("MKCALENDAR {path}: HTTP {status}: {text}");
        }
        Ok(())
    }

    /// An address book at `path` (ending in `/`), by an extended MKCOL (RFC 5689).
    pub fn mkaddressbook(&self, path: &str, name: &str) -> Result<()> {
        let body = format!(
            r#"<?xml version="1.0" encoding="utf-8"?>
<D:mkcol xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav">
  <D:set><D:prop><D:resourcetype><D:collection/><CR:addressbook/></D:resourcetype><D:displayname>{name}</D:displayname></D:prop></D:set>
</D:mkcol>"#
        );
        let (status, text) = self.request(
            "MKCOL",
            path,
            &[],
            Some(("application/xml; charset=utf-8", body.as_bytes())),
        )?;
        if status != 201 {
            bail!("MKCOL {path}: HTTP {status}: {text}");
        }
        Ok(())
    }

    /// The paths of the resources (not collections) directly in `collection`.
    pub fn list(&self, collection: &str) -> Result<Vec<String>> {
        let body = r#"<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/></D:prop></D:propfind>"#;
        let (status, text) = self.request(
            "PROPFIND",
            collection,
            &[("Depth", "1")],
            Some(("application/xml; charset=utf-8", body.as_bytes())),
        )?;
        if status != 207 {
            bail!("PROPFIND {collection}: HTTP {status}: {text}");
        }
        // Each <response> names an href and, for a collection, a <collection/> type.
        let mut out = Vec::new();
        for response in text.split("response>").filter(|r| r.contains("href>")) {
            let Some(href) = response
                .split("href>")
                .nth(1)
                .and_then(|h| h.split('<').next())
            else {
                continue;
            };
            if !response.contains("collection") && href != collection {
                out.push(href.to_owned());
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// The content of every resource in `collection`, by path.
    pub fn contents(&self, collection: &str) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        for href in self.list(collection)? {
            let (status, body) = self.get(&href)?;
            if status != 200 {
                bail!("GET {href}: HTTP {status}");
            }
            out.push((href, body));
        }
        Ok(out)
    }
}
