//! Rules a schema cannot express: uniqueness, cross-field consistency, names that must parse.
//! Pure: no network, no files, no clock.

use crate::address::{Address, Domain, host_name};
use std::collections::HashMap;

use chrono::NaiveTime;

use super::{AuthMethod, Endpoint, MailMigrationSpec, SecretRef, Server, SourceServer, TlsMode};
use crate::manifest::{Issue, Path, Severity};

/// Every semantic problem of `spec`, whose own path is `base` (normally `spec`).
/// With `strict`, inline secrets are errors rather than warnings.
pub fn check(spec: &MailMigrationSpec, base: &Path, strict: bool) -> Vec<Issue> {
    let mut c = Checker {
        out: Vec::new(),
        strict,
    };
    c.domains(spec, base);
    c.mailboxes(spec, base);
    c.source(spec, &base.key("source"), base);
    c.server(&spec.destination, &base.key("destination"), "destination");
    c.auth_needs(spec, base);
    c.folders(spec, base);
    c.dns(spec, base);
    c.relays(spec, base);
    c.forwarding_and_probe(spec, base);
    c.sieve_dav_and_tokens(spec, base);
    c.accounts(spec, base);
    c.cutover(spec, base);
    c.limits(spec, base);
    c.accept_refused(spec, base);
    c.secrets(spec, base);
    c.out
}

struct Checker {
    out: Vec<Issue>,
    strict: bool,
}

impl Checker {
    fn error(&mut self, path: Path, msg: impl Into<String>) {
        self.out.push(Issue::error(path, msg));
    }

    fn warning(&mut self, path: Path, msg: impl Into<String>) {
        self.out.push(Issue::warning(path, msg));
    }

    fn domains(&mut self, spec: &MailMigrationSpec, base: &Path) {
        let mut seen: HashMap<Domain, usize> = HashMap::new();
        for (i, d) in spec.domains.iter().enumerate() {
            let p = base.key("domains").index(i);
            if let Err(why) = host_name(d.trim_end_matches('.')) {
                self.error(p.clone(), format!("`{d}` is not a domain name: {why}"));
            }
            if let Some(first) = seen.insert(Domain::of(d), i) {
                self.error(p, format!("`{d}` is listed twice (also domains[{first}])"));
            }
        }
    }

    fn mailboxes(&mut self, spec: &MailMigrationSpec, base: &Path) {
        let discovered = spec.accounts.as_ref().is_some_and(|a| a.discover);
        if spec.mailboxes.is_empty() && spec.mailboxes_from.is_none() && !discovered {
            self.error(
                base.key("mailboxes"),
                "no mailboxes: list them in `mailboxes`, point `mailboxesFrom` at a CSV, or discover them (`accounts.discover`)",
            );
        }
        let domains: Vec<Domain> = spec.domains.iter().map(|d| Domain::of(d)).collect();
        let mut seen: HashMap<Address, usize> = HashMap::new();
        for (i, m) in spec.mailboxes.iter().enumerate() {
            let p = base.key("mailboxes").index(i).key("address");
            let address = match Address::parse(&m.address) {
                Ok(a) => a,
                Err(why) => {
                    self.error(
                        p,
                        format!(
                            "`{}` is not an email address (local@domain): it {why}",
                            m.address
                        ),
                    );
                    continue;
                }
            };
            if let Some(first) = seen.insert(address.clone(), i) {
                self.error(
                    p.clone(),
                    format!(
                        "`{}` is listed twice (also mailboxes[{first}]; addresses are compared case-insensitively)",
                        m.address
                    ),
                );
            }
            if !domains.is_empty() && !domains.contains(&address.domain()) {
                self.error(
                    p,
                    format!(
                        "`{}` is not in spec.domains ({})",
                        m.address,
                        spec.domains.join(", ")
                    ),
                );
            }
        }
    }

    /// Exactly one kind of source; its endpoint or path; what a file source cannot do.
    fn source(&mut self, spec: &MailMigrationSpec, p: &Path, base: &Path) {
        let s: &SourceServer = &spec.source;
        let kinds = s.kinds();
        match kinds.len() {
            0 => self.error(
                p.clone(),
                "no source: give one of `imap`, `pop3`, `maildir`, `mbox` or `pst`",
            ),
            1 => {}
            _ => {
                let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
                self.error(
                    p.key(kinds[1].name()),
                    format!(
                        "one source per migration: `{}` are given together (keep one)",
                        names.join("`, `")
                    ),
                );
            }
        }
        if let Some(e) = &s.imap {
            self.endpoint(e, &p.key("imap"), "the source IMAP server");
        }
        if let Some(e) = &s.pop3 {
            self.endpoint(e, &p.key("pop3"), "the source POP3 server");
        }
        for (kind, files) in [("maildir", &s.maildir), ("mbox", &s.mbox)] {
            if let Some(f) = files {
                self.path_template(spec, &f.path, &p.key(kind).key("path"));
                if let Some(ssh) = &f.ssh
                    && let Err(why) = host_or_ip(&ssh.host)
                {
                    self.error(
                        p.key(kind).key("ssh").key("host"),
                        format!("`{}` is not a host name or IP address: {why}", ssh.host),
                    );
                }
                if kind == "maildir" && f.quoting.is_some() {
                    self.error(
                        p.key(kind).key("quoting"),
                        "only for mbox: Maildir files are not quoted",
                    );
                }
                match &f.inbox {
                    Some(_) if kind == "maildir" => self.error(
                        p.key(kind).key("inbox"),
                        "only for mbox: a Maildir's INBOX is its top directory",
                    ),
                    Some(inbox) => {
                        if let Err(why) = super::PathTemplate::parse(inbox) {
                            self.error(p.key(kind).key("inbox"), why.to_string());
                        }
                    }
                    None => {}
                }
            }
        }
        if let Some(f) = &s.pst {
            self.path_template(spec, &f.file, &p.key("pst").key("file"));
        }
        if !s.kind().is_files() {
            return;
        }
        let kind = match s.kind() {
            super::SourceKind::Mbox => "an mbox",
            super::SourceKind::Pst => "a PST",
            _ => "a Maildir",
        };
        if s.auth != super::Auth::default() {
            self.warning(
                p.key("auth"),
                format!("not used: {kind} source is read from files, without logins"),
            );
        }
        let no_login = format!(
            "logs in to the old server with each mailbox's source login, and {kind} source has none: leave it out"
        );
        if let Some(sv) = &spec.sieve
            && sv.managesieve.is_some()
        {
            self.error(base.key("sieve").key("managesieve"), no_login.clone());
        }
        if let Some(d) = &spec.dav
            && d.source.is_some()
        {
            self.error(base.key("dav").key("source"), no_login);
        }
        if spec.forwarding.is_some() {
            self.error(
                base.key("forwarding").key("managesieve"),
                format!(
                    "forwarding is installed over the old server's ManageSieve with each mailbox's source login, and {kind} source has none: leave `forwarding` out"
                ),
            );
        }
    }

    /// A file source's path template: absolute, known placeholders, one per mailbox.
    fn path_template(&mut self, spec: &MailMigrationSpec, path: &str, p: &Path) {
        match super::PathTemplate::parse(path) {
            Err(why) => self.error(p.clone(), why.to_string()),
            Ok(t) => {
                let mailboxes = spec.mailboxes.len() + usize::from(spec.lists_more_mailboxes());
                if !t.varies() && mailboxes > 1 {
                    self.error(
                        p.clone(),
                        format!(
                            "`{path}` names the same files for every mailbox: put `{{user}}`, `{{local}}`, `{{domain}}` or `{{address}}` in it"
                        ),
                    );
                }
            }
        }
    }

    fn server(&mut self, s: &Server, p: &Path, side: &str) {
        self.endpoint(&s.imap, &p.key("imap"), &format!("the {side} IMAP server"));
    }

    fn endpoint(&mut self, e: &Endpoint, p: &Path, what: &str) {
        if let Err(why) = host_or_ip(&e.host) {
            self.error(
                p.key("host"),
                format!("`{}` is not a host name or IP address: {why}", e.host),
            );
        }
        if e.tls == TlsMode::None && !is_loopback(&e.host) {
            self.warning(
                p.key("tls"),
                format!(
                    "{what} is reached without TLS: passwords and mail cross the network in clear"
                ),
            );
        }
        if e.tls == TlsMode::None && e.ca_certificate.is_some() {
            self.warning(p.key("caCertificate"), "has no effect with `tls: none`");
        }
        // The ports that speak TLS from the first byte: a plain client waits there for a
        // greeting that never comes, until its timeout.
        if let Some(port @ (993 | 995 | 465)) = e.port
            && e.tls != TlsMode::Tls
        {
            self.warning(
                p.key("port"),
                format!(
                    "port {port} expects TLS from the first byte; with `tls: {}` the connection waits for a greeting that never comes: use `tls: tls`",
                    match e.tls {
                        TlsMode::Starttls => "starttls",
                        _ => "none",
                    }
                ),
            );
        }
    }

    /// `limits` of both servers: sizes that move something, and none on files.
    fn limits(&mut self, spec: &MailMigrationSpec, base: &Path) {
        let sides = [
            ("source", spec.source.limits.as_ref()),
            ("destination", spec.destination.limits.as_ref()),
        ];
        for (side, limits) in sides {
            let Some(l) = limits else { continue };
            let p = base.key(side).key("limits");
            if side == "source" && spec.source.kind().is_files() {
                self.warning(
                    p.clone(),
                    "not used: a file source is read on this machine or over ssh, not from a server with limits",
                );
            }
            let mailbox = l.per_mailbox.clone().unwrap_or_default();
            for (at, size) in [
                (p.key("bytesPerSecond"), l.bytes_per_second),
                (p.key("bytesPerDay"), l.bytes_per_day),
                (
                    p.key("perMailbox").key("bytesPerDay"),
                    mailbox.bytes_per_day,
                ),
            ] {
                if size.is_some_and(|s| s.0 == 0) {
                    self.error(at, "0 would never let a message through: give a size above 0, or leave the field out for no limit");
                }
            }
            let endpoint = match side {
                "source" => spec.source.endpoint(),
                _ => Some(&spec.destination.imap),
            };
            if let (Some(n), Some(max)) = (l.connections, endpoint.and_then(|e| e.max_connections))
                && n > max
            {
                self.warning(
                    p.key("connections"),
                    format!(
                        "`maxConnections: {max}` is lower and holds: at most {max} connections"
                    ),
                );
            }
        }
    }

    /// Each mailbox needs the credentials its login method uses.
    fn auth_needs(&mut self, spec: &MailMigrationSpec, base: &Path) {
        let source_logs_in = !spec.source.kind().is_files();
        for (side, auth) in [
            ("source", &spec.source.auth),
            ("destination", &spec.destination.auth),
        ] {
            if side == "source" && !source_logs_in {
                continue;
            }
            let ap = base.key(side).key("auth");
            match auth.method {
                AuthMethod::Master => {
                    if auth.user.is_none() {
                        self.error(ap.clone(), "missing `user`: the master user that logs in on behalf of each mailbox");
                    }
                    if auth.password.is_none() {
                        self.error(ap.clone(), "missing `password`: the master user's password");
                    }
                }
                AuthMethod::Password => {
                    if auth.user.is_some() {
                        self.error(ap.key("user"), "`user` is only used with `method: master`");
                    }
                    if auth.password.is_some() {
                        self.error(
                            ap.key("password"),
                            "with `method: password` each mailbox has its own password; a shared one is only used with `master` or `xoauth2`",
                        );
                    }
                }
                AuthMethod::Xoauth2 | AuthMethod::Oauthbearer => {
                    if auth.user.is_some() {
                        self.error(ap.key("user"), "`user` is only used with `method: master`");
                    }
                }
            }
            let shared = logs_in_without_own_secret(auth);
            if shared {
                continue;
            }
            let field = if side == "source" {
                "sourcePassword"
            } else {
                "destinationPassword"
            };
            for (i, m) in spec.mailboxes.iter().enumerate() {
                let has = if side == "source" {
                    m.source_password.is_some()
                } else {
                    m.destination_password.is_some()
                };
                if !has {
                    self.error(
                        base.key("mailboxes").index(i),
                        format!(
                            "missing `{field}`: {side}.auth.method is {}",
                            method_name(auth.method)
                        ),
                    );
                }
            }
        }
    }

    fn folders(&mut self, spec: &MailMigrationSpec, base: &Path) {
        let Some(f) = &spec.folders else { return };
        let fp = base.key("folders");
        let lang = &f.source_language;
        if lang != "auto" && !is_language_tag(lang) {
            self.error(
                fp.key("sourceLanguage"),
                format!("`{lang}` is neither `auto` nor a language code such as `de` or `pt-BR`"),
            );
        }
        let mut froms: HashMap<&str, usize> = HashMap::new();
        let mut tos: HashMap<String, usize> = HashMap::new();
        for (i, r) in f.rename.iter().enumerate() {
            let rp = fp.key("rename").index(i);
            if let Some(first) = froms.insert(r.from.as_str(), i) {
                self.error(
                    rp.key("from"),
                    format!("`{}` is renamed twice (also rename[{first}])", r.from),
                );
            }
            let to_key = normalize_folder(&r.to);
            if let Some(first) = tos.insert(to_key, i) {
                self.error(
                    rp.key("to"),
                    format!(
                        "rename[{first}] also renames into `{}`: two folders would merge",
                        r.to
                    ),
                );
            }
            if r.from == r.to {
                self.warning(rp.clone(), "renames a folder to its own name");
            }
            if f.exclude.iter().any(|pat| glob_match(pat, &r.from)) {
                self.warning(
                    rp.key("from"),
                    format!("`{}` is excluded, so this rule never applies", r.from),
                );
            }
        }
        // A rule that renames into another rule's source would be applied once or twice
        // depending on order: refuse the ambiguity.
        for (i, r) in f.rename.iter().enumerate() {
            if let Some(&j) = froms.get(r.to.as_str())
                && j != i
            {
                self.error(
                    fp.key("rename").index(i).key("to"),
                    format!(
                        "`{}` is itself renamed by rename[{j}]: rules do not chain, write the final name",
                        r.to
                    ),
                );
            }
        }
    }

    fn dns(&mut self, spec: &MailMigrationSpec, base: &Path) {
        let Some(dns) = &spec.dns else { return };
        let dp = base.key("dns");
        let zone = Domain::of(&dns.zone);
        if let Err(why) = host_name(zone.as_str()) {
            self.error(
                dp.key("zone"),
                format!("`{}` is not a zone name: {why}", dns.zone),
            );
        }
        if spec.domains.is_empty() {
            self.error(
                base.key("domains"),
                "`dns` changes the MX of spec.domains, but none are listed",
            );
        }
        for (i, d) in spec.domains.iter().enumerate() {
            let d = Domain::of(d);
            if d != zone && !d.as_str().ends_with(&format!(".{zone}")) {
                self.error(
                    base.key("domains").index(i),
                    format!("`{d}` is not inside dns.zone `{}`", dns.zone),
                );
            }
        }
        let mut seen = HashMap::new();
        for (i, mx) in dns.mx.iter().enumerate() {
            let p = dp.key("mx").index(i).key("exchange");
            if !mx.exchange.ends_with('.') {
                self.error(
                    p.clone(),
                    format!(
                        "`{}` is not fully qualified: end it with a dot (`{}.`), or DNS appends the zone",
                        mx.exchange, mx.exchange
                    ),
                );
            } else if let Err(why) = host_name(mx.exchange.trim_end_matches('.')) {
                self.error(
                    p.clone(),
                    format!("`{}` is not a host name: {why}", mx.exchange),
                );
            }
            if let Some(first) = seen.insert(Domain::of(&mx.exchange), i) {
                self.error(
                    p,
                    format!("`{}` is listed twice (also mx[{first}])", mx.exchange),
                );
            }
        }
        let restore = spec.finalize.clone().unwrap_or_default().restore_ttl;
        if dns.cutover_ttl >= restore {
            let at = if spec.finalize.is_some() {
                base.key("finalize").key("restoreTTL")
            } else {
                dp.key("cutoverTTL")
            };
            self.error(
                at,
                format!(
                    "cutoverTTL ({}) must be below restoreTTL ({restore}): the TTL is lowered for the switch and raised after",
                    dns.cutover_ttl
                ),
            );
        }
        // After the switch, resolvers may send mail to the old MX for as long as they
        // cache it: the delta sync and the kept source must outlast that.
        if let Some(f) = &spec.finalize {
            let held = std::time::Duration::from_secs(u64::from(dns.cutover_ttl));
            for (field, d) in [
                ("deltaSyncAfter", f.delta_sync_after),
                ("keepSourceFor", f.keep_source_for),
            ] {
                if d.0 < held {
                    self.warning(
                        base.key("finalize").key(field),
                        format!(
                            "{field} ({d}) is shorter than cutoverTTL ({}s): resolvers may still send mail to the old server after that",
                            dns.cutover_ttl
                        ),
                    );
                }
            }
        }
        let pp = dp.key("provider").key(dns.provider.kind());
        match &dns.provider {
            crate::spec::DnsProvider::Rfc2136(r) => {
                if let Err(why) = host_port(&r.server) {
                    self.error(pp.key("server"), format!("`{}` {why}", r.server));
                }
            }
            // An API changes records, but does not say what resolvers are served: the
            // zone's nameservers are asked for that, and which they are must be written.
            _ if dns.check_nameservers.is_empty() => self.error(
                dp.key("checkNameservers"),
                format!(
                    "with the {} provider, list the zone's authoritative nameservers (`host:port`): they are read for the records and TTLs resolvers get",
                    dns.provider.kind()
                ),
            ),
            _ => {}
        }
        if let Some((field, url)) = dns.provider.url()
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            self.error(
                pp.key(field),
                format!("`{url}` is not an http:// or https:// URL"),
            );
        }
        for (i, ns) in dns.check_nameservers.iter().enumerate() {
            if let Err(why) = host_port(ns) {
                self.error(dp.key("checkNameservers").index(i), format!("`{ns}` {why}"));
            }
        }
        if let Some(srv) = &dns.srv {
            for (name, v) in [("imaps", &srv.imaps), ("submission", &srv.submission)] {
                if let Some(v) = v
                    && let Err(why) = host_port(v)
                {
                    self.error(dp.key("srv").key(name), format!("`{v}` {why}"));
                }
            }
        }
    }

    fn relays(&mut self, spec: &MailMigrationSpec, base: &Path) {
        for (name, relay) in [("gateway", &spec.gateway), ("fallback", &spec.fallback)] {
            let Some(r) = relay else { continue };
            let rp = base.key(name);
            if let Err(why) = relay_target(&r.relay_to) {
                self.error(rp.key("relayTo"), format!("`{}` {why}", r.relay_to));
            }
            if !r.postfix.config_dir.starts_with('/') {
                self.error(
                    rp.key("postfix").key("configDir"),
                    "must be an absolute path",
                );
            }
            if let Some(ssh) = &r.postfix.ssh
                && let Err(why) = host_or_ip(&ssh.host)
            {
                self.error(
                    rp.key("postfix").key("ssh").key("host"),
                    format!("`{}` is not a host name or IP address: {why}", ssh.host),
                );
            }
            if spec.domains.is_empty() {
                self.error(
                    base.key("domains"),
                    format!("`{name}` relays the mail of spec.domains, but none are listed"),
                );
            }
        }
    }

    fn accept_refused(&mut self, spec: &MailMigrationSpec, base: &Path) {
        for (i, rule) in spec.accept_refused.iter().enumerate() {
            let p = base.key("acceptRefused").index(i);
            if rule.message_id.is_none() && rule.larger_than.is_none() {
                self.error(
                    p.clone(),
                    "a rule needs messageId or largerThan: accepting every refusal is not a rule",
                );
            }
            if let Some(m) = &rule.mailbox {
                let listed = spec
                    .mailboxes
                    .iter()
                    .any(|x| Address::of(&x.address) == Address::of(m));
                if !listed && spec.mailboxes_from.is_none() {
                    self.error(
                        p.key("mailbox"),
                        format!("`{m}` is not one of spec.mailboxes"),
                    );
                }
            }
        }
    }

    fn forwarding_and_probe(&mut self, spec: &MailMigrationSpec, base: &Path) {
        if let Some(f) = &spec.forwarding {
            let fp = base.key("forwarding");
            if Address::parse(&f.to).is_err() {
                self.error(fp.key("to"), format!("`{}` is not an email address", f.to));
            }
            let lower = Address::of(&f.to);
            if spec
                .mailboxes
                .iter()
                .any(|m| Address::of(&m.address) == lower)
            {
                self.error(
                    fp.key("to"),
                    "forwarding to a mailbox that is being migrated would loop",
                );
            }
            self.endpoint(&f.managesieve, &fp.key("managesieve"), "ManageSieve");
            if let Some(d) = &f.destination_managesieve {
                self.endpoint(d, &fp.key("destinationManagesieve"), "ManageSieve");
            }
        }
        if let Some(p) = &spec.probe {
            let pp = base.key("probe");
            self.endpoint(
                &p.smtp.endpoint(),
                &pp.key("smtp"),
                "the probe's SMTP server",
            );
            let lower = Address::of(&p.mailbox);
            let listed = spec
                .mailboxes
                .iter()
                .any(|m| Address::of(&m.address) == lower);
            if !listed && spec.mailboxes_from.is_none() {
                self.error(
                    pp.key("mailbox"),
                    format!("`{}` is not one of spec.mailboxes", p.mailbox),
                );
            }
        }
    }

    /// The endpoints beside IMAP: ManageSieve for `sieve`, the URLs of `dav` and of the
    /// token endpoints, checked here so that a typo is reported by line and field, not by
    /// a failing step.
    fn accounts(&mut self, spec: &MailMigrationSpec, base: &Path) {
        use super::{UnknownScheme, UserDatabase};
        let Some(a) = &spec.accounts else { return };
        let ap = base.key("accounts");
        for (side, db) in [("source", &a.source), ("destination", &a.destination)] {
            let UserDatabase::PasswdFile(p) = db else {
                continue;
            };
            if !p.path.starts_with('/') {
                self.error(
                    ap.key(side).key("passwdFile").key("path"),
                    format!("`{}` is not an absolute path", p.path),
                );
            }
        }
        if a.discover {
            let lacking: Vec<&str> = [
                ("source", &spec.source.auth),
                ("destination", &spec.destination.auth),
            ]
            .into_iter()
            .filter(|(side, _)| !(*side == "source" && spec.source.kind().is_files()))
            .filter(|(_, auth)| !logs_in_without_own_secret(auth))
            .map(|(side, _)| side)
            .collect();
            if !lacking.is_empty() {
                self.error(
                    ap.key("discover"),
                    format!(
                        "discovered mailboxes have no passwords of their own: log in to the {} server with `auth.method: master` (or one shared token)",
                        lacking.join(" and the ")
                    ),
                );
            }
        }
        if a.unknown_scheme == UnknownScheme::TemporaryPassword
            && a.temporary_passwords.is_none()
            && a.temporary_passwords_secret.is_none()
        {
            self.error(
                ap.key("temporaryPasswords"),
                "`unknownScheme: temporaryPassword` needs a file (or, in a cluster, `temporaryPasswordsSecret`) for the generated passwords",
            );
        }
        if a.temporary_passwords.is_some() && a.temporary_passwords_secret.is_some() {
            self.error(
                ap.key("temporaryPasswordsSecret"),
                "give the generated passwords one place: `temporaryPasswords` (a file) or `temporaryPasswordsSecret` (a Secret)",
            );
        }
        let Some(al) = &a.aliases else { return };
        let alp = ap.key("aliases");
        let maps = [
            ("source", al.source.as_ref()),
            ("destination", Some(&al.destination)),
        ];
        for (side, store) in maps {
            if let Some(super::AliasStore::PostfixMap(m)) = store
                && m.table().is_none()
            {
                self.error(
                    alp.key(side).key("postfixMap").key("map"),
                    format!("`{}` is not a Postfix table: type:/absolute/path, e.g. hash:/etc/postfix/virtual", m.map),
                );
            }
        }
        let domains: Vec<Domain> = spec.domains.iter().map(|d| Domain::of(d)).collect();
        for (i, d) in al.declared.iter().enumerate() {
            let dp = alp.key("declared").index(i);
            match Address::parse(&d.address) {
                Err(why) => self.error(
                    dp.key("address"),
                    format!("`{}` is not an email address: it {why}", d.address),
                ),
                Ok(address) if !domains.is_empty() && !domains.contains(&address.domain()) => self
                    .error(
                        dp.key("address"),
                        format!("`{}` is not in spec.domains", d.address),
                    ),
                Ok(_) => {}
            }
            for (j, t) in d.to.iter().enumerate() {
                if t.trim().is_empty() || t.contains([',', ' ', '\t', '\n']) {
                    self.error(
                        dp.key("to").index(j),
                        format!("`{t}` is not one address (a list is written as several entries)"),
                    );
                }
            }
        }
    }

    fn sieve_dav_and_tokens(&mut self, spec: &MailMigrationSpec, base: &Path) {
        if let Some(s) = &spec.sieve {
            let sp = base.key("sieve");
            if let Some(m) = &s.managesieve {
                self.endpoint(m, &sp.key("managesieve"), "ManageSieve");
            }
            self.endpoint(
                &s.destination_managesieve,
                &sp.key("destinationManagesieve"),
                "ManageSieve",
            );
        }
        if let Some(d) = &spec.dav {
            let dp = base.key("dav");
            if let Some(s) = &d.source {
                self.url(&s.url, &dp.key("source").key("url"), "CardDAV/CalDAV");
            }
            self.url(
                &d.destination.url,
                &dp.key("destination").key("url"),
                "CardDAV/CalDAV",
            );
        }
        for (side, auth) in [
            ("source", &spec.source.auth),
            ("destination", &spec.destination.auth),
        ] {
            use super::TokenSourceSpec as T;
            let tp = base.key(side).key("auth").key("tokenSource");
            let url = match &auth.token_source {
                Some(T::RefreshToken { token_url, .. }) => {
                    Some((token_url, tp.key("refreshToken")))
                }
                Some(T::ClientCredentials { token_url, .. }) => {
                    Some((token_url, tp.key("clientCredentials")))
                }
                Some(T::ServiceAccount {
                    token_url: Some(u), ..
                }) => Some((u, tp.key("serviceAccount"))),
                _ => None,
            };
            if let Some((u, p)) = url {
                self.url(u, &p.key("tokenUrl"), "the token endpoint");
            }
            if auth.token_source.is_some()
                && !matches!(
                    auth.method,
                    super::AuthMethod::Xoauth2 | super::AuthMethod::Oauthbearer
                )
            {
                self.error(
                    tp,
                    "tokens are only used with `method: xoauth2` or `method: oauthbearer`",
                );
            }
        }
    }

    /// An http(s) URL with a host; plain http only to this machine, else a warning.
    fn url(&mut self, url: &str, p: &Path, what: &str) {
        match url.parse::<http::Uri>() {
            Ok(u) if matches!(u.scheme_str(), Some("https" | "http")) && u.host().is_some() => {
                let host = u.host().unwrap_or_default();
                if u.scheme_str() == Some("http") && !is_loopback(host) {
                    self.warning(
                        p.clone(),
                        format!(
                            "{what} is reached without TLS: passwords and data cross the network in clear"
                        ),
                    );
                }
            }
            _ => self.error(
                p.clone(),
                format!("`{url}` is not an http:// or https:// URL with a host"),
            ),
        }
    }

    fn cutover(&mut self, spec: &MailMigrationSpec, base: &Path) {
        let Some(w) = spec.cutover.as_ref().and_then(|c| c.window.as_ref()) else {
            return;
        };
        let wp = base.key("cutover").key("window");
        let start = parse_hhmm(&w.start);
        let end = parse_hhmm(&w.end);
        if start.is_none() {
            self.error(
                wp.key("start"),
                format!(
                    "`{}` is not a time: use HH:MM, 24-hour, e.g. 01:00",
                    w.start
                ),
            );
        }
        if end.is_none() {
            self.error(
                wp.key("end"),
                format!("`{}` is not a time: use HH:MM, 24-hour, e.g. 05:00", w.end),
            );
        }
        if let (Some(s), Some(e)) = (start, end)
            && s == e
        {
            self.error(
                wp.key("end"),
                "the window opens and closes at the same time",
            );
        }
        if w.time_zone.parse::<chrono_tz::Tz>().is_err() {
            self.error(
                wp.key("timeZone"),
                format!(
                    "`{}` is not an IANA time zone (e.g. UTC, Europe/Berlin, America/New_York)",
                    w.time_zone
                ),
            );
        }
        let mut seen = Vec::new();
        for (i, d) in w.days.iter().enumerate() {
            if seen.contains(d) {
                self.warning(wp.key("days").index(i), format!("{d:?} is listed twice"));
            }
            seen.push(*d);
        }
    }

    fn secrets(&mut self, spec: &MailMigrationSpec, base: &Path) {
        for (path, secret) in secret_refs(spec, base) {
            if secret.is_inline() {
                let msg = "inline secret `value` in a manifest: use env, file or secretKeyRef (inline values are for tests only)";
                self.out.push(Issue {
                    path: path.key("value"),
                    severity: if self.strict {
                        Severity::Error
                    } else {
                        Severity::Warning
                    },
                    message: msg.into(),
                    at_key: false,
                });
            }
        }
    }
}

/// Every secret reference of a spec, with its path.
pub fn secret_refs<'a>(spec: &'a MailMigrationSpec, base: &Path) -> Vec<(Path, &'a SecretRef)> {
    let mut out = Vec::new();
    let endpoint = |e: &'a Endpoint, p: Path, out: &mut Vec<(Path, &'a SecretRef)>| {
        if let Some(ca) = &e.ca_certificate {
            out.push((p.key("caCertificate"), ca));
        }
    };
    for (kind, e) in [("imap", &spec.source.imap), ("pop3", &spec.source.pop3)] {
        if let Some(e) = e {
            endpoint(e, base.key("source").key(kind), &mut out);
        }
    }
    endpoint(
        &spec.destination.imap,
        base.key("destination").key("imap"),
        &mut out,
    );
    for (side, auth) in [
        ("source", &spec.source.auth),
        ("destination", &spec.destination.auth),
    ] {
        if let Some(pw) = &auth.password {
            out.push((base.key(side).key("auth").key("password"), pw));
        }
    }
    for (i, m) in spec.mailboxes.iter().enumerate() {
        let mp = base.key("mailboxes").index(i);
        if let Some(s) = &m.source_password {
            out.push((mp.key("sourcePassword"), s));
        }
        if let Some(s) = &m.destination_password {
            out.push((mp.key("destinationPassword"), s));
        }
    }
    if let Some(s) = &spec.mailboxes_from {
        out.push((base.key("mailboxesFrom"), s));
    }
    if let Some(dns) = &spec.dns {
        let pp = base.key("dns").key("provider").key(dns.provider.kind());
        for (field, secret) in dns.provider.secrets() {
            let mut at = pp.clone();
            for part in field.split('.') {
                at = at.key(part);
            }
            out.push((at, secret));
        }
    }
    for (kind, files) in [
        ("maildir", &spec.source.maildir),
        ("mbox", &spec.source.mbox),
    ] {
        if let Some(ssh) = files.as_ref().and_then(|f| f.ssh.as_ref()) {
            let sp = base.key("source").key(kind).key("ssh");
            if let Some(s) = &ssh.identity {
                out.push((sp.key("identity"), s));
            }
            if let Some(s) = &ssh.known_hosts {
                out.push((sp.key("knownHosts"), s));
            }
        }
    }
    for (name, relay) in [("gateway", &spec.gateway), ("fallback", &spec.fallback)] {
        if let Some(ssh) = relay.as_ref().and_then(|r| r.postfix.ssh.as_ref()) {
            let sp = base.key(name).key("postfix").key("ssh");
            if let Some(s) = &ssh.identity {
                out.push((sp.key("identity"), s));
            }
            if let Some(s) = &ssh.known_hosts {
                out.push((sp.key("knownHosts"), s));
            }
        }
    }
    if let Some(f) = &spec.forwarding {
        endpoint(
            &f.managesieve,
            base.key("forwarding").key("managesieve"),
            &mut out,
        );
        if let Some(d) = &f.destination_managesieve {
            endpoint(
                d,
                base.key("forwarding").key("destinationManagesieve"),
                &mut out,
            );
        }
    }
    if let Some(ca) = spec
        .probe
        .as_ref()
        .and_then(|p| p.smtp.ca_certificate.as_ref())
    {
        out.push((base.key("probe").key("smtp").key("caCertificate"), ca));
    }
    out
}

/// Whether mailboxes log in with `auth` alone: a master user, one shared password or
/// token, or a service account or app-only grant that obtains each mailbox's token.
fn logs_in_without_own_secret(auth: &super::Auth) -> bool {
    let tokens = matches!(
        auth.token_source,
        Some(
            crate::spec::TokenSourceSpec::ServiceAccount { .. }
                | crate::spec::TokenSourceSpec::ClientCredentials { .. }
        )
    );
    auth.method == AuthMethod::Master || auth.password.is_some() || tokens
}

fn method_name(m: AuthMethod) -> &'static str {
    match m {
        AuthMethod::Password => "password",
        AuthMethod::Master => "master",
        AuthMethod::Xoauth2 => "xoauth2",
        AuthMethod::Oauthbearer => "oauthbearer",
    }
}

fn host_or_ip(s: &str) -> Result<(), String> {
    if s.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    host_name(s.trim_end_matches('.'))
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `host`, `host:port`, `[v6]:port` or `[host]:port`.
fn host_port(s: &str) -> Result<(), String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let Some((h, tail)) = rest.split_once(']') else {
            return Err("has an unclosed '['".into());
        };
        (h, tail.strip_prefix(':'))
    } else if s.matches(':').count() > 1 {
        // A bare IPv6 address without a port.
        (s, None)
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    host_or_ip(host).map_err(|why| format!("is not host[:port]: {why}"))?;
    if let Some(p) = port {
        match p.parse::<u16>() {
            Ok(n) if n > 0 => {}
            _ => return Err(format!("has port `{p}`, not a number from 1 to 65535")),
        }
    }
    Ok(())
}

/// Postfix next-hop syntax: `[host]:port` (no MX lookup), `host:port` or `host`.
fn relay_target(s: &str) -> Result<(), String> {
    host_port(s).map_err(|why| format!("{why} (write [host]:port to skip MX lookups)"))
}

fn parse_hhmm(s: &str) -> Option<NaiveTime> {
    let (h, m) = s.split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    NaiveTime::from_hms_opt(h.parse().ok()?, m.parse().ok()?, 0)
}

/// BCP 47-shaped: a 2–3 letter language, then optional subtags of letters and digits.
fn is_language_tag(s: &str) -> bool {
    let mut parts = s.split(['-', '_']);
    let lang = parts.next().unwrap_or_default();
    (2..=3).contains(&lang.len())
        && lang.bytes().all(|b| b.is_ascii_alphabetic())
        && parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Folder names compare with any of the usual separators and INBOX case-insensitively.
fn normalize_folder(name: &str) -> String {
    let unified = name.replace(['.', '\\'], "/");
    match unified.split_once('/') {
        Some((first, rest)) if first.eq_ignore_ascii_case("inbox") => format!("INBOX/{rest}"),
        None if unified.eq_ignore_ascii_case("inbox") => "INBOX".into(),
        _ => unified,
    }
}

/// `*` matches any run of characters; everything else literally.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let mut rest = name;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            let Some(at) = rest.find(part) else {
                return false;
            };
            rest = &rest[at + part.len()..];
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_forms() {
        for ok in [
            "127.0.0.1:53",
            "ns1.example.com",
            "[::1]:53",
            "::1",
            "[mx.example.net]:25",
        ] {
            assert!(host_port(ok).is_ok(), "{ok}");
        }
        for bad in ["127.0.0.1:0", "host:99999", "[::1", "bad host:53", ":53"] {
            assert!(host_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn globs() {
        assert!(glob_match("Junk", "Junk"));
        assert!(!glob_match("Junk", "Junk2"));
        assert!(glob_match("Archive/*", "Archive/2020"));
        assert!(glob_match("*Spam*", "My Spam box"));
        assert!(!glob_match("Archive/*", "Archives"));
    }

    #[test]
    fn times_and_languages() {
        assert!(parse_hhmm("01:00").is_some());
        assert!(parse_hhmm("1:30").is_some());
        assert!(parse_hhmm("24:00").is_none());
        assert!(parse_hhmm("12:60").is_none());
        assert!(parse_hhmm("noon").is_none());
        assert!(is_language_tag("pt-BR"));
        assert!(is_language_tag("vi"));
        assert!(!is_language_tag("vietnamese"));
    }
}
