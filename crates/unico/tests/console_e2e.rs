//! The web console end to end, in headless Chromium driven through chromedriver, against
//! the real `unico` binary: what a user clicks and what they see. Also writes a screenshot
//! of every console page on the demo data, at desktop and phone widths, to
//! `target/screenshots/` for review.
//!
//! Needs `chromium` and `chromium-driver` (Debian); `UNICO_SKIP_BROWSER_TESTS=1` skips.
//!
//! Each flow is a sequence of small steps on [`Console`]; new screens add steps there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Mutex;
use std::time::Instant;

use serde_json::json;
use support::browser::{Browser, Element, css, screenshot_dir, xpath, xpath_literal};
use support::{ADMIN_KEY, Server, agent, call};

/// One browser at a time: the machine may have two cores only.
static ONE_BROWSER: Mutex<()> = Mutex::new(());

/// What the import box shows once an import ended.
#[derive(Debug)]
struct ImportOutcome {
    summary: String,
    /// Line, column, value, reason: the error table's cells as shown.
    errors: Vec<[String; 4]>,
    /// Whether "Import the valid rows" is offered.
    retry_offered: bool,
}

/// The console of one server, in one browser.
struct Console {
    b: Browser,
    base: String,
}

impl Console {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn open(&self, path: &str) {
        self.b.goto(&self.url(path));
    }

    /// A button (or a link styled as one) by its visible text.
    fn button(&self, text: &str) -> Element<'_> {
        let t = xpath_literal(text);
        self.b.find_visible(xpath(&format!(
            "//button[normalize-space()={t}] | //a[contains(@class,'button')][normalize-space()={t}]"
        )))
    }

    /// The text of the page's first flash message of `kind` (`ok` or `bad`).
    fn flash(&self, kind: &str) -> String {
        self.b
            .find_visible(css(&format!(".flash.{kind}")))
            .text()
            .trim()
            .to_owned()
    }

    // ---- the content security policy ----

    /// From now on, every page records what the content security policy blocks (an inline
    /// script, style or handler the console still had) in the origin's localStorage, which
    /// outlives navigations. The recorder is injected by the browser, not by the page, so
    /// the policy does not block it.
    fn record_policy_violations(&self) {
        self.b.cdp(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({ "source": r#"
                document.addEventListener("securitypolicyviolation", function (e) {
                  var seen = JSON.parse(localStorage.getItem("csp-violations") || "[]");
                  seen.push(e.violatedDirective + " " + e.blockedURI + " " + (e.sample || "") + " at " + location.pathname);
                  localStorage.setItem("csp-violations", JSON.stringify(seen));
                });
            "# }),
        );
    }

    /// What the policy blocked since the last call (and forgets it).
    fn policy_violations(&self) -> Vec<String> {
        let seen = self.b.script(
            "var s = localStorage.getItem('csp-violations'); localStorage.removeItem('csp-violations'); return s;",
            vec![],
        );
        match seen.as_str() {
            Some(list) => serde_json::from_str(list).unwrap(),
            None => Vec::new(),
        }
    }

    /// What sticks out sideways: the page itself wider than the window, or a form (or a
    /// control of one) wider than its box or past the window's edge, unless it is in a
    /// box that scrolls sideways (a wide table scrolls inside its card). Empty when the
    /// page fits.
    fn overflowing(&self) -> Vec<String> {
        let found = self.b.script(
            "function name(e) { return e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') +
                 (e.className && typeof e.className === 'string' ? '.' + e.className.trim().split(/\\s+/).join('.') : ''); }
             function scrolled(e) {
               for (; e && e !== document.body; e = e.parentElement) {
                 var x = getComputedStyle(e).overflowX;
                 if ((x === 'auto' || x === 'scroll') && e.scrollWidth > e.clientWidth) return true;
               }
               return false;
             }
             var out = [], w = document.documentElement.clientWidth;
             if (document.documentElement.scrollWidth > w) out.push('page ' + document.documentElement.scrollWidth + ' > ' + w);
             document.querySelectorAll('main form').forEach(function (f) {
               if (f.offsetParent === null || scrolled(f)) return;
               if (f.scrollWidth > f.clientWidth + 1) out.push(name(f) + ' scrolls ' + f.scrollWidth + ' > ' + f.clientWidth);
               f.querySelectorAll('input, select, button, textarea').forEach(function (c) {
                 var r = c.getBoundingClientRect();
                 if (c.offsetParent !== null && c.type !== 'hidden' && r.right > w + 1) out.push(name(c) + ' in ' + name(f) + ' ends at ' + Math.round(r.right));
               });
             });
             return out;",
            vec![],
        );
        serde_json::from_value(found).unwrap()
    }

    fn heading(&self) -> String {
        self.b.find(css("main h1, .signin h1, h1")).text()
    }

    // ---- signing in and out ----

    /// Types `key` on the sign-in page and submits it.
    fn submit_key(&self, key: &str) {
        self.open("/console");
        let input = self.b.find_visible(css("input[name=key]"));
        input.fill(key);
        self.button("Sign in").click();
    }

    /// Signs in with `key`; waits for the first page behind the sign-in.
    fn sign_in(&self, key: &str) {
        self.submit_key(key);
        self.b.wait_url("a console page behind the sign-in", |u| {
            u.contains("/console/apps")
        });
    }

    /// Submits a wrong key; answers the error the sign-in page shows.
    fn sign_in_refused(&self, key: &str) -> String {
        self.submit_key(key);
        let error = self.flash("bad");
        assert!(
            self.b.try_find(css("input[name=key]")).is_some(),
            "still on the sign-in page"
        );
        error
    }

    /// Clicks "Sign out"; waits for the sign-in page.
    fn sign_out(&self) {
        self.button("Sign out").click();
        self.b.find_visible(css("input[name=key]"));
    }

    // ---- applications ----

    /// The applications list: (name, time zone) per row.
    fn apps_listed(&self) -> Vec<(String, String)> {
        self.open("/console/apps");
        self.b.find(css("main table"));
        self.table_rows("main table")
            .into_iter()
            .map(|r| (r[0].clone(), r[1].clone()))
            .collect()
    }

    /// The cells' text of every body row of the first table matching `table`.
    fn table_rows(&self, table: &str) -> Vec<Vec<String>> {
        let rows = self.b.script(
            "const t = document.querySelector(arguments[0]);
             if (!t || !t.tBodies.length) return [];
             return Array.from(t.tBodies[0].rows)
               .map(r => Array.from(r.cells).map(c => c.textContent.trim()));",
            vec![json!(table)],
        );
        serde_json::from_value(rows).unwrap()
    }

    // ---- customer fields ----

    /// Creates a field through the "New field" form; answers the flash message shown, `Ok`
    /// for a confirmation, `Err` for an error.
    fn create_field(&self, app: i64, name: &str, ty: &str) -> Result<String, String> {
        self.open(&format!("/console/apps/{app}/fields"));
        let form = "//form[.//button[normalize-space()='Create field']]";
        self.b
            .find(xpath(&format!("{form}//input[@name='name']")))
            .fill(name);
        self.b
            .find(xpath(&format!(
                "{form}//select[@name='type']/option[@value={}]",
                xpath_literal(ty)
            )))
            .click();
        self.button("Create field").click();
        self.b.wait("a message after creating a field", || {
            let ok = self.b.try_find(css(".flash.ok"));
            let bad = self.b.try_find(css(".flash.bad"));
            match (ok, bad) {
                (Some(e), _) => Some(Ok(e.text().trim().to_owned())),
                (_, Some(e)) => Some(Err(e.text().trim().to_owned())),
                _ => None,
            }
        })
    }

    /// The fields list: name, type, fill text ("50%") per row.
    fn fields_listed(&self, app: i64) -> Vec<(String, String, String)> {
        self.open(&format!("/console/apps/{app}/fields"));
        self.b.find(css("main table"));
        self.table_rows("main .card table:not(#csv-errors)")
            .into_iter()
            .map(|r| (r[0].clone(), r[1].clone(), r[2].clone()))
            .collect()
    }

    // ---- CSV upload ----

    /// Chooses `file` in the upload box on the fields page, with `mode` ("atomic" or
    /// "skip_invalid"), clicks Upload, waits for the outcome.
    fn upload_csv(&self, app: i64, file: &std::path::Path, mode: &str) -> ImportOutcome {
        self.open(&format!("/console/apps/{app}/fields"));
        self.b
            .find(css("#upload input[type=file]"))
            .send_keys(file.to_str().unwrap());
        self.b
            .find(css(&format!("#upload select option[value={mode}]")))
            .click();
        self.button("Upload").click();
        self.import_outcome()
    }

    /// Waits for the import's result and reads it: in the upload box when nothing was
    /// imported, else on the page drawn again with the import's summary (`#last-import`).
    fn import_outcome(&self) -> ImportOutcome {
        let finished = self.b.wait("the import's outcome", || {
            if self.b.current_url().contains("import=") {
                return self.b.try_find(css("#last-import")).map(|_| "#last-import");
            }
            let flash = self.b.try_find(css("#upload .flash"))?;
            let text = flash.try_text()?;
            (flash.is_displayed() && !text.starts_with("Imported:")).then_some("#upload")
        });
        let summary = self
            .b
            .find_visible(css(&format!("{finished} .flash")))
            .text();
        let errors = self
            .table_rows(&format!("{finished} table"))
            .into_iter()
            .map(|r| <[String; 4]>::try_from(r).expect("4 cells per error row"))
            .collect();
        let retry_offered = self
            .b
            .find_all(xpath(
                "//*[@id='upload']//button[normalize-space()='Import the valid rows']",
            ))
            .iter()
            .any(Element::is_displayed);
        ImportOutcome {
            summary: summary.trim().to_owned(),
            errors,
            retry_offered,
        }
    }

    /// Clicks "Import the valid rows" after a refused atomic import; waits for the outcome.
    fn import_valid_rows(&self) -> ImportOutcome {
        self.button("Import the valid rows").click();
        self.import_outcome()
    }

    // ---- customers ----

    fn open_customers(&self, app: i64) {
        self.open(&format!("/console/apps/{app}/customers"));
        self.b.find(css("main table"));
    }

    /// The customerIds of the list's current page.
    fn customers_listed(&self) -> Vec<String> {
        self.table_rows("main .card table")
            .into_iter()
            .map(|r| r[0].clone())
            .collect()
    }

    /// Switches the filter editor to "Builder" or "Text" by its tab.
    fn filter_mode(&self, tab: &str) {
        self.b
            .find_visible(xpath(&format!(
                "//*[@id='filter-tabs']//button[normalize-space()={}]",
                xpath_literal(tab)
            )))
            .click();
    }

    /// Types `text` into the filter's text box (replacing what was there), switching to
    /// the text mode first if the builder is shown.
    fn type_filter(&self, text: &str) {
        let input = self.b.find(css("input[name=filter]:not([type=hidden])"));
        if !input.is_displayed() {
            self.filter_mode("Text");
        }
        self.b
            .find_visible(css("input[name=filter]:not([type=hidden])"))
            .fill(text);
    }

    /// What the filter's text box holds (the builder keeps it in step).
    fn filter_text(&self) -> String {
        self.b
            .find(css("input[name=filter]:not([type=hidden])"))
            .value()
    }

    /// The builder's condition rows, in order: field, operator (its value, e.g. `gt`) and
    /// the values typed.
    fn builder_rows(&self) -> Vec<(String, String, Vec<String>)> {
        let rows = self.b.script(
            "return Array.from(document.querySelectorAll('#builder .cond')).map(r => [
               r.querySelector('select.field').value,
               r.querySelector('select.op').value,
               Array.from(r.querySelectorAll('.values input')).map(i => i.value)]);",
            vec![],
        );
        serde_json::from_value(rows).unwrap()
    }

    /// Sets the `part` ("field" or "op") select of condition row `row` to the option of
    /// value `value` (rows re-render after such a change).
    fn builder_choose(&self, row: usize, part: &str, value: &str) {
        let rows = self.b.find_all(css("#builder .cond"));
        let select = &rows[row].find_all(css(&format!("select.{part}")))[0];
        let option = select
            .find_all(xpath(&format!("./option[@value={}]", xpath_literal(value))))
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no {part} option {value}"));
        option.click();
    }

    /// Types `text` in the first value box of condition row `row`.
    fn builder_value(&self, row: usize, text: &str) {
        let rows = self.b.find_all(css("#builder .cond"));
        rows[row].find_all(css(".values input"))[0].fill(text);
    }

    /// Adds a condition to the outermost group ("+ Condition").
    fn builder_add_condition(&self) {
        let before = self.builder_rows().len();
        self.b
            .find(xpath(
                "//*[@id='builder']/*[contains(@class,'group')]/*[contains(@class,'group-actions')]\
                 /button[normalize-space()='+ Condition']",
            ))
            .click();
        self.b.wait("a new condition row", || {
            (self.builder_rows().len() == before + 1).then_some(())
        });
    }

    /// Sets whether the outermost group matches "and" (all) or "or" (any).
    fn builder_match(&self, op: &str) {
        self.b
            .find(css(&format!(
                "#builder > .group > .group-head select.match option[value={op}]"
            )))
            .click();
    }

    /// Waits for the live count to read `expected`.
    fn wait_count(&self, expected: &str) {
        self.b.wait_text(css("#live-count"), expected);
    }

    /// The message under the filter box.
    fn filter_error(&self) -> String {
        self.b.wait("a filter error", || {
            let t = self.b.text_now(css("#filter-error"))?;
            (!t.trim().is_empty()).then_some(t)
        })
    }

    /// Saves the current filter as a new segment named `name`; waits for its page.
    fn save_segment(&self, name: &str) {
        let form = "//form[.//button[normalize-space()='Save as new segment']]";
        self.b
            .find(xpath(&format!("{form}//input[@name='name']")))
            .fill(name);
        self.button("Save as new segment").click();
        self.b.wait_text(css("main h1"), name);
    }

    /// The segments list: (name, size as shown) per row.
    fn segments_listed(&self, app: i64) -> Vec<(String, String)> {
        self.open(&format!("/console/apps/{app}/segments"));
        self.b.find(css("main table"));
        self.table_rows("main table")
            .into_iter()
            .map(|r| (r[0].clone(), r[1].clone()))
            .collect()
    }

    /// Opens a customer from the list by clicking its customerId.
    fn open_customer_from_list(&self, app: i64, customer_id: &str) {
        self.open_customers(app);
        self.b
            .find(xpath(&format!(
                "//main//table//a[normalize-space()={}]",
                xpath_literal(customer_id)
            )))
            .click();
        self.b.wait_text(css("main h1"), customer_id);
    }

    /// The input of a row of the customer form, by the row's label.
    fn customer_input(&self, label: &str) -> Element<'_> {
        self.b.find(xpath(&format!(
            "//table[contains(@class,'form')]//tr[th[normalize-space()={}]]//input",
            xpath_literal(label)
        )))
    }

    /// Replaces the value of field `name` in the customer form (empty removes it).
    fn set_customer_field(&self, name: &str, value: &str) {
        let input = self.customer_input(name);
        input.clear();
        if !value.is_empty() {
            input.send_keys(value);
        }
    }

    /// Clicks Save on the customer form; answers the flash shown (`Ok` saved, `Err` refused).
    fn save_customer(&self) -> Result<String, String> {
        // The answer to a save is a new page: mark this one, so that a message it still
        // shows from an earlier save is never read as this save's.
        self.b.script("window.unicoBeforeSave = true;", vec![]);
        self.button("Save").click();
        self.b.wait("a message after saving", || {
            if self
                .b
                .script("return window.unicoBeforeSave === true;", vec![])
                == json!(true)
            {
                return None;
            }
            if let Some(e) = self.b.try_find(css(".flash.ok")) {
                return Some(Ok(e.text().trim().to_owned()));
            }
            self.b
                .try_find(css(".flash.bad"))
                .map(|e| Err(e.text().trim().to_owned()))
        })
    }

    /// The inline error under field `name` of the customer form.
    fn customer_field_error(&self, name: &str) -> String {
        self.b
            .find(xpath(&format!(
                "//table[contains(@class,'form')]//tr[th[normalize-space()={}]]//*[contains(@class,'err')]",
                xpath_literal(name)
            )))
            .text()
    }

    // ---- behaviours: builder conditions on what customers did ----

    /// The `row`th behaviour row of the builder (counting behaviours only).
    fn behaviour_row(&self, row: usize) -> Element<'_> {
        let rows = self.b.find_all(css("#builder .cond.event"));
        rows.into_iter()
            .nth(row)
            .unwrap_or_else(|| panic!("no behaviour row {row}"))
    }

    /// Adds a behaviour to the outermost group ("+ Behaviour").
    fn builder_add_behaviour(&self) {
        let before = self.b.find_all(css("#builder .cond.event")).len();
        self.b
            .find(xpath(
                "//*[@id='builder']/*[contains(@class,'group')]/*[contains(@class,'group-actions')]\
                 /button[normalize-space()='+ Behaviour']",
            ))
            .click();
        self.b.wait("a new behaviour row", || {
            (self.b.find_all(css("#builder .cond.event")).len() == before + 1).then_some(())
        });
    }

    /// Chooses the option of value `value` in the select labelled `label` (its
    /// `aria-label`) of behaviour row `row`; with `nth`, the nth such select (property
    /// conditions repeat their labels).
    fn behaviour_choose(&self, row: usize, label: &str, nth: usize, value: &str) {
        let selects = self
            .behaviour_row(row)
            .find_all(css(&format!("select[aria-label={}]", css_string(label))));
        let select = selects
            .get(nth)
            .unwrap_or_else(|| panic!("no select {label:?} #{nth} in behaviour {row}"));
        select
            .find_all(xpath(&format!("./option[@value={}]", xpath_literal(value))))
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no option {value:?} in {label:?}"))
            .click();
    }

    /// Types `text` in the box labelled `label` (the nth such) of behaviour row `row`.
    fn behaviour_fill(&self, row: usize, label: &str, nth: usize, text: &str) {
        let inputs = self
            .behaviour_row(row)
            .find_all(css(&format!("input[aria-label={}]", css_string(label))));
        inputs
            .get(nth)
            .unwrap_or_else(|| panic!("no box {label:?} #{nth} in behaviour {row}"))
            .fill(text);
    }

    /// Clicks the button of visible text `text` in behaviour row `row`.
    fn behaviour_click(&self, row: usize, text: &str) {
        self.behaviour_row(row)
            .find_all(xpath(&format!(
                ".//button[normalize-space()={}]",
                xpath_literal(text)
            )))
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no button {text:?} in behaviour {row}"))
            .click();
    }

    /// What each behaviour row shows, control by control as `label=value` (visible
    /// controls only, in order; a property condition's controls after `where:`).
    fn behaviours(&self) -> Vec<Vec<String>> {
        let rows = self.b.script(
            "function shown(c) { return c.offsetParent !== null; }
             function read(box) {
               return Array.from(box.querySelectorAll(':scope > select, :scope > input, :scope > span select, :scope > span input'))
                 .filter(shown)
                 .map(c => c.getAttribute('aria-label') + '=' + c.value);
             }
             return Array.from(document.querySelectorAll('#builder .cond.event')).map(r =>
               read(r).concat(...Array.from(r.querySelectorAll('.where-row')).map(w => ['where:'].concat(read(w)))));",
            vec![],
        );
        serde_json::from_value(rows).unwrap()
    }

    /// Waits until the live count answers the filter shown in the text box (no edit is
    /// being counted); that count.
    fn settled_count(&self, text: &str) -> u64 {
        self.b.wait("the count of the filter shown", || {
            let done = self.b.script(
                "var o = document.getElementById('live-count');
                 return o.getAttribute('aria-busy') === 'false' && !o.hasAttribute('data-stale')
                   ? [document.getElementById('filter').value, o.getAttribute('data-count')] : null;",
                vec![],
            );
            let [shown, count] = serde_json::from_value::<[String; 2]>(done).ok()?;
            (shown == text).then(|| count.parse().unwrap())
        })
    }

    /// Clicks "Delete customer"; answers the confirmation's text after accepting or
    /// dismissing it.
    fn delete_customer(&self, confirm: bool) -> String {
        self.button("Delete customer").click();
        let text = self.b.wait_dialog();
        if confirm {
            self.b.accept_dialog();
        } else {
            self.b.dismiss_dialog();
        }
        text
    }
}

/// A server with an empty application; its id and API key.
fn server_with_app(data: &std::path::Path, name: &str) -> (Server, i64, String) {
    let server = Server::start(data, &[]);
    let (status, app) = call(
        &agent(),
        "POST",
        &format!("{}/v1/apps", server.base),
        ADMIN_KEY,
        Some(json!({ "name": name, "timezone": "Europe/Madrid" })),
    );
    assert_eq!(status, 201, "{app}");
    let id = app["id"].as_i64().unwrap();
    let key = app["api_key"].as_str().unwrap().to_owned();
    (server, id, key)
}

/// `text` as a CSS string (for attribute selectors).
fn css_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

fn step(started: Instant, what: &str) {
    eprintln!("[{:>6.2}s] {what}", started.elapsed().as_secs_f64());
}

#[test]
fn console_flows() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let Some(browser) = Browser::start() else {
        return;
    };
    let t = Instant::now();
    let data = tempfile::tempdir().unwrap();
    let (server, app, key) = server_with_app(data.path(), "Flow Shop");
    let c = Console {
        b: browser,
        base: server.base.clone(),
    };
    step(t, "browser and server up");

    // The console runs under a content security policy with no inline script or style; a
    // page that still had some would break. The recorder catches what the policy blocks
    // (checked here on an inline style set on purpose), and at the end nothing else was.
    c.record_policy_violations();
    c.open("/console");
    c.b.script("document.body.setAttribute('style', 'color: red');", vec![]);
    let blocked = c.b.wait("the inline style reported as blocked", || {
        Some(c.policy_violations()).filter(|v| !v.is_empty())
    });
    assert!(
        blocked.iter().all(|v| v.starts_with("style-src")),
        "{blocked:?}"
    );

    // Signing in: a wrong key is refused with a message; the admin key sees every
    // application; an application's key lands on its customers.
    let error = c.sign_in_refused("unico_not-a-real-key");
    assert_eq!(error, "This key is not valid, or it was revoked.");
    c.sign_in(ADMIN_KEY);
    let apps = c.apps_listed();
    assert!(
        apps.contains(&("Flow Shop".to_owned(), "Europe/Madrid".to_owned())),
        "{apps:?}"
    );
    c.sign_out();
    c.sign_in(&key);
    assert!(
        c.b.current_url()
            .ends_with(&format!("/console/apps/{app}/customers")),
        "{}",
        c.b.current_url()
    );
    assert_eq!(c.heading(), "Customers");
    step(t, "signed in");

    // Customer fields: a reserved name is refused with its reason; valid ones are created
    // and listed.
    let refused = c.create_field(app, "customerId", "string").unwrap_err();
    assert!(refused.contains("reserved"), "{refused}");
    assert_eq!(
        c.create_field(app, "age", "number").unwrap(),
        "Field age created."
    );
    assert_eq!(
        c.create_field(app, "city", "string").unwrap(),
        "Field city created."
    );
    let fields = c.fields_listed(app);
    let names: Vec<(&str, &str)> = fields
        .iter()
        .map(|(n, t, _)| (n.as_str(), t.as_str()))
        .collect();
    assert_eq!(names, [("age", "number"), ("city", "string")]);
    step(t, "fields created");

    // A CSV with one bad row: all-or-nothing refuses it and shows where and why; then
    // "Import the valid rows" writes the others.
    let csv = data.path().join("customers.csv");
    std::fs::write(
        &csv,
        "customerId,age,city\n\
         ana@example.com,31,Madrid\n\
         bob@example.com,forty,Paris\n\
         carl@example.com,45,Lyon\n",
    )
    .unwrap();
    let refused = c.upload_csv(app, &csv, "atomic");
    assert!(refused.retry_offered, "{refused:?}");
    assert_eq!(refused.errors.len(), 1, "{refused:?}");
    let [line, column, value, reason] = &refused.errors[0];
    assert_eq!(
        (line.as_str(), column.as_str(), value.as_str()),
        ("3", "age", "forty"),
        "{refused:?}"
    );
    assert!(reason.contains("number"), "{reason}");
    let imported = c.import_valid_rows();
    assert!(
        imported.summary.starts_with("Imported:")
            && imported.summary.contains("2 customers created"),
        "{imported:?}"
    );
    assert!(!imported.retry_offered, "{imported:?}");
    // The summary stays in view with the row the import skipped, and says which file it
    // was and who imported it; so does the history.
    assert_eq!(imported.errors.len(), 1, "{imported:?}");
    assert_eq!(
        imported.errors[0][..3],
        ["3", "age", "forty"],
        "{imported:?}"
    );
    let card = c.b.find(css("#last-import")).text();
    assert!(
        card.contains("customers.csv") && card.contains("by console key:"),
        "{card}"
    );
    let history = c.table_rows("#import-history table");
    assert_eq!(history[0][1], "customers.csv", "{history:?}");
    assert!(history[0][2].starts_with("console key:"), "{history:?}");
    // The page is drawn again with the fill rates.
    c.b.wait("the fill rates after the import", || {
        let fields = c.fields_listed(app);
        fields
            .iter()
            .all(|(_, _, fill)| fill == "100%")
            .then_some(())
    });
    c.open_customers(app);
    assert_eq!(
        c.customers_listed(),
        ["ana@example.com", "carl@example.com"]
    );
    step(t, "CSV imported");

    // The filter box: the count follows what is typed; a wrong filter says why.
    c.wait_count("2");
    c.b.wait_text(css("#live-count-noun"), "customers match");
    c.type_filter("age > 40");
    c.wait_count("1");
    // One customer reads singular.
    c.b.wait_text(css("#live-count-noun"), "customer matches");
    // Regression: the count followed the edit but the table below did not (215 match
    // above the unfiltered list) until "Show customers" was pressed. The rows follow too.
    c.b.wait("the table to follow the count", || {
        (c.customers_listed() == ["carl@example.com"]).then_some(())
    });
    assert!(
        c.b.current_url().contains("filter=age"),
        "{}",
        c.b.current_url()
    );
    // One audience: with a search as well as the filter, what the page counts is what it
    // lists and what Export CSV downloads (the filter alone matches both customers, the
    // search only one).
    c.type_filter("customerId exists");
    c.wait_count("2");
    c.b.find(css("#filter-form input[name=q]")).fill("car");
    c.b.wait("the export link to carry the search", || {
        let href = c.b.find(css("#export-link")).attribute("href")?;
        (href.contains("q=car") && href.contains("filter=customerId")).then_some(())
    });
    c.wait_count("1");
    c.b.wait("the rows of the search and the filter", || {
        (c.customers_listed() == ["carl@example.com"]).then_some(())
    });
    let exported = c.b.script(
        "var x = new XMLHttpRequest();
         x.open('GET', document.getElementById('export-link').href, false);
         x.send();
         return [x.status, x.responseText];",
        vec![],
    );
    assert_eq!(exported[0], 200, "{exported}");
    let csv = exported[1].as_str().unwrap_or("");
    let exported_ids: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap_or(""))
        .collect();
    assert_eq!(exported_ids, ["carl@example.com"], "{csv}");
    // Three backspaces empty the search as a person would (each one an input event).
    c.b.find(css("#filter-form input[name=q]"))
        .send_keys("\u{E003}\u{E003}\u{E003}");
    c.b.wait("the export link without the search", || {
        let href = c.b.find(css("#export-link")).attribute("href")?;
        (!href.contains("q=c")).then_some(())
    });
    c.wait_count("2");
    c.type_filter("age > ");
    let why = c.filter_error();
    assert!(!why.trim().is_empty());
    c.type_filter("age >= 31");
    c.wait_count("2");
    c.b.wait_text(css("#filter-error"), "");
    c.type_filter("age > 40");
    c.wait_count("1");
    step(t, "live count");

    // The builder shows the typed filter as a condition row; editing rows moves the count
    // and the text form follows.
    c.filter_mode("Builder");
    assert_eq!(
        c.builder_rows(),
        [("age".to_owned(), "gt".to_owned(), vec!["40".to_owned()])]
    );
    c.builder_value(0, "30");
    c.wait_count("2");
    c.builder_add_condition();
    c.builder_choose(1, "field", "city");
    c.builder_choose(1, "op", "eq");
    c.builder_value(1, "Lyon");
    c.wait_count("1");
    c.builder_match("or");
    c.wait_count("2");
    c.b.wait("the text form to follow the builder", || {
        let text = c.filter_text();
        (text.contains("age > 30") && text.contains("or") && text.contains("city = \"Lyon\""))
            .then_some(())
    });
    // No value the user did not choose (regression: "in the last" arrived as 30, so that
    // typing 90 gave 3090; "anniversary is today" arrived "or within 30 days"). An
    // incomplete condition says so at the row and beside the count, and is not saved.
    c.builder_add_condition();
    c.builder_choose(2, "field", "created_at");
    c.builder_choose(2, "op", "within_last");
    assert_eq!(c.builder_rows()[2].2, [""]);
    c.b.wait_text(
        css("#count-incomplete"),
        "(1 incomplete condition is not counted)",
    );
    assert!(
        c.b.find(css("#builder .cond.incomplete .incomplete-note"))
            .is_displayed()
    );
    c.b.find(xpath(
        "//form[.//button[normalize-space()='Save as new segment']]//input[@name='name']",
    ))
    .fill("Half done");
    c.button("Save as new segment").click();
    assert!(
        c.filter_error().contains("incomplete"),
        "{}",
        c.filter_error()
    );
    assert!(c.b.current_url().contains("/customers"));
    c.builder_value(2, "90");
    assert_eq!(c.builder_rows()[2].2, ["90"]);
    c.b.wait_text(css("#count-incomplete"), "");
    c.builder_choose(2, "op", "anniversary");
    assert_eq!(c.builder_rows()[2].2, [""]);
    c.b.wait("the anniversary without a window", || {
        let text = c.filter_text();
        (text.contains("created_at anniversary") && !text.contains("within")).then_some(())
    });
    c.filter_mode("Text");
    c.type_filter("age > 40");
    c.wait_count("1");
    step(t, "filter builder");

    // Save the typed filter as a segment: listed with its size.
    c.save_segment("Over 40");
    assert_eq!(c.flash("ok"), "Segment saved.");
    assert_eq!(c.b.find(css("#segment-count")).text(), "1");
    let members = c.table_rows("main table");
    assert_eq!(members.len(), 1, "{members:?}");
    assert_eq!(members[0][0], "carl@example.com");
    assert_eq!(
        c.segments_listed(app),
        [("Over 40".to_owned(), "1".to_owned())]
    );
    step(t, "segment saved");

    // A customer's page: ID and customerId cannot be edited; a field can.
    c.open_customer_from_list(app, "ana@example.com");
    for label in ["ID", "customerId"] {
        let input = c.customer_input(label);
        let locked =
            input.property("disabled") == json!(true) || input.property("readOnly") == json!(true);
        assert!(locked, "{label} is editable");
        assert_eq!(input.attribute("name"), None, "{label} would be submitted");
    }
    assert_eq!(c.customer_input("customerId").value(), "ana@example.com");
    assert_eq!(c.customer_input("age").value(), "31");
    c.set_customer_field("city", "Valencia");
    assert_eq!(c.save_customer().unwrap(), "Saved.");
    assert_eq!(c.customer_input("city").value(), "Valencia");
    // An invalid number is refused inline, and nothing is saved.
    c.set_customer_field("age", "forty");
    c.set_customer_field("city", "Sevilla");
    let refused = c.save_customer().unwrap_err();
    assert!(refused.contains("Nothing was saved"), "{refused}");
    assert!(
        c.customer_field_error("age").contains("number"),
        "{}",
        c.customer_field_error("age")
    );
    c.open_customer_from_list(app, "ana@example.com");
    assert_eq!(c.customer_input("age").value(), "31");
    assert_eq!(c.customer_input("city").value(), "Valencia");
    // An empty box removes the value.
    c.set_customer_field("city", "");
    assert_eq!(c.save_customer().unwrap(), "Saved.");
    c.open_customer_from_list(app, "ana@example.com");
    assert_eq!(c.customer_input("city").value(), "");
    assert_eq!(c.customer_input("age").value(), "31");
    step(t, "customer edited");

    // Delete: the confirmation can be dismissed; accepted, the customer is gone.
    let question = c.delete_customer(false);
    assert!(question.contains("cannot be undone"), "{question}");
    assert!(c.b.current_url().contains("/customers/ana%40example.com"));
    c.b.find(css("main h1"));
    c.delete_customer(true);
    c.b.wait_url("the customers list", |u| {
        u.ends_with(&format!("/apps/{app}/customers"))
    });
    c.b.find(css("main table"));
    assert_eq!(c.customers_listed(), ["carl@example.com"]);
    c.wait_count("1");
    c.open(&format!("/console/apps/{app}/customers/ana%40example.com"));
    assert_eq!(c.heading(), "Not found");
    step(t, "customer deleted");

    assert_eq!(
        c.policy_violations(),
        Vec::<String>::new(),
        "the content security policy blocked part of the console"
    );

    // Sign out: the console asks for a key again, even for a page's address.
    c.open(&format!("/console/apps/{app}/customers"));
    c.sign_out();
    c.open(&format!("/console/apps/{app}/customers"));
    c.b.find_visible(css("input[name=key]"));
    assert!(
        c.b.current_url().ends_with("/console"),
        "{}",
        c.b.current_url()
    );
    step(t, "signed out");
}

/// Screenshots of every console page on the demo data at 1280×800 and 390×844:
/// `target/screenshots/{page}-{width}.png` (the viewport) and `…-full.png` (the page).
#[test]
fn console_screenshots() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let Some(browser) = Browser::start() else {
        return;
    };
    let t = Instant::now();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &["--demo"]);
    let c = Console {
        b: browser,
        base: server.base.clone(),
    };
    step(t, "browser and demo server up");
    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let bad_csv = data.path().join("bad.csv");
    std::fs::write(
        &bad_csv,
        "customerId,age,birthdate\n\
         new.one@example.com,41,1984-02-29\n\
         new.two@example.com,forty-two,1983-02-12\n\
         new.three@example.com,39,12/03/1986\n",
    )
    .unwrap();
    // The app of the demo: the first the admin key lists.
    let app = 1;

    for (width, height) in [(1280u32, 800u32), (390, 844)] {
        c.b.cmd("DELETE", "/cookie", None);
        c.b.set_viewport(width, height);
        let shot = |page: &str| {
            // Let the live count and fonts settle.
            std::thread::sleep(std::time::Duration::from_millis(300));
            let path = dir.join(format!("{page}-{width}.png"));
            std::fs::write(&path, c.b.screenshot()).unwrap();
            let full = dir.join(format!("{page}-{width}-full.png"));
            std::fs::write(&full, c.b.full_page_screenshot(6000)).unwrap();
            if width < 500 {
                assert_eq!(
                    c.overflowing(),
                    Vec::<String>::new(),
                    "on {page} at {width} px"
                );
            }
        };

        c.open("/console");
        c.b.find_visible(css("input[name=key]"));
        shot("sign-in");
        c.sign_in_refused("unico_wrong");
        shot("sign-in-error");

        c.sign_in(ADMIN_KEY);
        c.apps_listed();
        shot("apps");

        c.open_customers(app);
        c.b.wait("the live count", || {
            let t = c.b.text_now(css("#live-count"))?;
            (t != "…").then_some(())
        });
        shot("customers");
        c.builder_add_condition();
        c.builder_choose(0, "field", "country");
        c.builder_value(0, "ES");
        c.builder_add_condition();
        c.builder_choose(1, "field", "age");
        c.builder_choose(1, "op", "between");
        c.builder_value(1, "25");
        c.b.find_all(css("#builder .cond"))[1].find_all(css(".values input"))[1].fill("34");
        c.builder_add_condition();
        c.builder_choose(2, "field", "last_purchase_at");
        c.builder_choose(2, "op", "before");
        c.b.wait("the builder's count", || {
            let t = c.b.text_now(css("#live-count"))?;
            (t != "5,000" && t != "…").then_some(())
        });
        shot("customers-builder");
        // Behaviours: conditions on the demo's events, typed, then shown in the builder.
        c.type_filter(
            "did purchase on web where amount > 100 at_least 2 times within_last 90d \
             and last app_open before 30d ago",
        );
        // Switching at once: the builder waits for the server's tree of the typed text.
        c.filter_mode("Builder");
        c.b.wait("the behaviours in the builder", || {
            (c.b.find_all(css("#builder .cond.event")).len() == 2).then_some(())
        });
        shot("customers-behaviours");
        c.type_filter("country = \"ES\" and age between 25 and 34");
        c.b.wait("the filtered count", || {
            let t = c.b.text_now(css("#live-count"))?;
            (t != "5,000" && t != "…").then_some(())
        });
        shot("customers-filter-typed");
        c.button("Show customers").click();
        c.b.wait_url("the applied filter", |u| u.contains("filter="));
        c.b.find(css("main table"));
        shot("customers-filtered");
        c.type_filter("age >");
        c.filter_error();
        shot("customers-filter-error");

        c.open_customers(app);
        let first = c.customers_listed()[0].clone();
        c.open_customer_from_list(app, &first);
        shot("customer");
        c.set_customer_field("age", "old");
        c.save_customer().unwrap_err();
        shot("customer-error");

        c.open(&format!("/console/apps/{app}/fields"));
        c.b.find(css("main table"));
        shot("fields");
        c.create_field(app, "id", "string").unwrap_err();
        shot("fields-create-error");
        let outcome = c.upload_csv(app, &bad_csv, "atomic");
        assert_eq!(outcome.errors.len(), 2, "{outcome:?}");
        shot("fields-upload-report");
        let imported = c.import_valid_rows();
        assert!(imported.summary.starts_with("Imported:"), "{imported:?}");
        shot("fields-import-summary");

        c.open_customers(app);
        c.type_filter("tier in (\"gold\", \"platinum\")");
        c.save_segment(&format!("Gold and platinum ({width})"));
        c.b.find(css("#segment-count"));
        shot("segment");
        c.segments_listed(app);
        shot("segments");

        c.open(&format!("/console/apps/{app}/insights"));
        c.b.find(css("main h1"));
        shot("insights");

        c.open("/console/apps/999/customers/nobody");
        c.b.find(css("main h1"));
        shot("not-found");
        step(t, &format!("screenshots at {width}"));
    }
    eprintln!("screenshots in {}", dir.display());
}

/// The customer list's tools, as a marketer uses them: a page size, a click on a header to
/// sort (twice to reverse), next and previous pages ("26–50 of 60"), the browser's back and
/// reload keeping the place, and a filter edit starting the new audience at its first page
/// in the same order. Screenshots at both widths.
#[test]
fn console_customer_list_sorts_and_pages() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let Some(browser) = Browser::start() else {
        return;
    };
    let t = Instant::now();
    let data = tempfile::tempdir().unwrap();
    let (server, app, key) = server_with_app(data.path(), "List Shop");
    api_post(
        &server.base,
        &key,
        &format!("/v1/apps/{app}/fields"),
        json!({"name": "age", "type": "number"}),
        201,
    );
    let batch: Vec<_> = (1..=60)
        .map(|i| json!({"customerId": format!("c{i:02}"), "fields": {"age": i}}))
        .collect();
    api_post(
        &server.base,
        &key,
        &format!("/v1/apps/{app}/customers/batch"),
        json!(batch),
        200,
    );
    let c = Console {
        b: browser,
        base: server.base.clone(),
    };
    c.record_policy_violations();
    c.sign_in(&key);
    c.open_customers(app);
    step(t, "60 customers");
    let range = |expected: &str| {
        c.b.wait(&format!("the range to read {expected:?}"), || {
            let text = c.b.text_now(css(".pager .range"))?;
            (text.trim() == expected).then_some(())
        });
    };
    range("1–50 of 60");
    assert_eq!(c.customers_listed().len(), 50);

    // 25 a page.
    c.b.find(css("#page-size option[value='25']")).click();
    c.b.wait_url("with size=25", |u| u.contains("size=25"));
    range("1–25 of 60");
    assert_eq!(c.customers_listed().len(), 25);

    // Sort by age (ascending), then again (descending).
    let sort_by = |label: &str| {
        c.b.find(xpath(&format!(
            "//table[contains(@class,'customers')]//th/a[contains(@class,'sort')][starts-with(normalize-space(), {})]",
            xpath_literal(label)
        )))
        .click();
    };
    sort_by("age");
    c.b.wait_url("sorted by age", |u| u.contains("sort=age"));
    assert_eq!(c.customers_listed()[0], "c01");
    sort_by("age");
    c.b.wait_url("sorted by age, descending", |u| u.contains("sort=-age"));
    range("1–25 of 60");
    assert_eq!(c.customers_listed()[..3], ["c60", "c59", "c58"]);
    assert_eq!(
        c.b.find(css("th[aria-sort]"))
            .attribute("aria-sort")
            .as_deref(),
        Some("descending")
    );
    assert!(c.b.current_url().contains("size=25"), "the size is kept");
    step(t, "sorted by a header");

    // Forward twice, back once: exactly the page before.
    let page1 = c.customers_listed();
    c.button("Next →").click();
    range("26–50 of 60");
    let page2 = c.customers_listed();
    assert_eq!(page2[0], "c35");
    c.button("Next →").click();
    range("51–60 of 60");
    let page3 = c.customers_listed();
    assert_eq!(page3.len(), 10);
    assert_eq!(page3[9], "c01");
    assert!(c.b.try_find(css("#page-next")).is_none(), "no next page");
    c.button("← Previous").click();
    range("26–50 of 60");
    assert_eq!(c.customers_listed(), page2);
    // The browser's back goes back to the third page, reload keeps it.
    c.b.script("history.back();", vec![]);
    range("51–60 of 60");
    assert_eq!(c.customers_listed(), page3);
    let here = c.b.current_url();
    c.b.goto(&here);
    range("51–60 of 60");
    assert_eq!(c.customers_listed(), page3);
    c.button("← Previous").click();
    range("26–50 of 60");
    c.button("← Previous").click();
    range("1–25 of 60");
    assert_eq!(c.customers_listed(), page1);
    step(t, "paged forward and back");

    // Another audience starts at its first page, in the same order and size; its total is
    // the count's. The filter's field was already a column; the export follows the filter.
    c.button("Next →").click();
    range("26–50 of 60");
    c.type_filter("age > 50");
    c.wait_count("10");
    range("1–10 of 10");
    assert_eq!(c.customers_listed()[0], "c60");
    let url = c.b.current_url();
    assert!(
        url.contains("sort=-age") && url.contains("size=25") && !url.contains("cursor"),
        "{url}"
    );
    let export = c.b.find(css("#export-link")).attribute("href").unwrap();
    assert!(export.contains("filter=age"), "{export}");
    step(t, "a new audience from its first page");

    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir).unwrap();
    c.type_filter("age > 0");
    c.wait_count("60");
    range("1–25 of 60");
    for (width, height) in [(1280u32, 800u32), (390, 844)] {
        c.b.set_viewport(width, height);
        std::thread::sleep(std::time::Duration::from_millis(300));
        std::fs::write(
            dir.join(format!("customers-list-tools-{width}-full.png")),
            c.b.full_page_screenshot(4000),
        )
        .unwrap();
    }
    assert_eq!(c.policy_violations(), Vec::<String>::new());
}

/// Small things a user notices: the sign-in card keeps margins on a phone; every input of
/// the customer page has a name; leaving it with unsaved edits asks first (only then, and
/// never when saving).
#[test]
fn console_customer_page_asks_before_losing_edits() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let Some(browser) = Browser::start() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let (server, app, key) = server_with_app(data.path(), "Guard Shop");
    for (name, ty) in [("city", "string"), ("seen_at", "datetime")] {
        api_post(
            &server.base,
            &key,
            &format!("/v1/apps/{app}/fields"),
            json!({"name": name, "type": ty}),
            201,
        );
    }
    api_post(
        &server.base,
        &key,
        &format!("/v1/apps/{app}/customers"),
        json!({"customerId": "ana", "fields": {"city": "Lyon", "seen_at": "2026-07-01T10:00:00Z"}}),
        201,
    );
    let c = Console {
        b: browser,
        base: server.base.clone(),
    };
    c.record_policy_violations();

    // The sign-in card at 390 px: margins on both sides.
    c.b.set_viewport(390, 844);
    c.open("/console");
    let rect = c.b.script(
        "var r = document.querySelector('.signin').getBoundingClientRect(); return [r.left, r.right, document.documentElement.clientWidth];",
        vec![],
    );
    let [left, right, width]: [f64; 3] = serde_json::from_value(rect).unwrap();
    assert!(
        left >= 12.0 && width - right >= 12.0,
        "{left} {right} {width}"
    );
    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("sign-in-margins-390.png"), c.b.screenshot()).unwrap();
    c.b.set_viewport(1280, 800);

    c.sign_in(&key);
    let customer = format!("/console/apps/{app}/customers/ana");
    c.open(&customer);
    c.b.wait_text(css("main h1"), "ana");
    // Every input has an accessible name; the datetime is on Madrid's clock (UTC+2 in July).
    let unnamed = c.b.script(
        "return Array.from(document.querySelectorAll('#customer-form input:not([type=hidden])'))
           .filter(i => !(i.labels && i.labels.length) && !i.getAttribute('aria-label'))
           .map(i => i.outerHTML);",
        vec![],
    );
    assert_eq!(unnamed, json!([]));
    assert_eq!(c.customer_input("seen_at").value(), "2026-07-01T12:00");

    // Whether leaving asks: headless Chromium does not open the beforeunload dialog, so
    // a listener added after the page's own records whether the page asked for it (the
    // event cancelled), in localStorage, which outlives the navigation.
    let record_leaving = || {
        c.b.script(
            "localStorage.removeItem('asked');
             window.addEventListener('beforeunload', function (e) {
               localStorage.setItem('asked', String(e.defaultPrevented));
             });",
            vec![],
        );
    };
    let asked = || {
        c.b.wait("the page to be left", || {
            let v = c.b.script("return localStorage.getItem('asked');", vec![]);
            v.as_str().map(|s| s == "true")
        })
    };
    // No edit: leaving does not ask.
    record_leaving();
    c.b.find(css("#back-to-list")).click();
    c.b.wait_url("the list", |u| {
        u.ends_with(&format!("/apps/{app}/customers"))
    });
    assert!(!asked(), "asked with nothing changed");
    // An edit: leaving asks.
    c.open(&customer);
    c.set_customer_field("city", "Paris");
    record_leaving();
    c.b.find(css("#back-to-list")).click();
    c.b.wait_url("the list", |u| {
        u.ends_with(&format!("/apps/{app}/customers"))
    });
    assert!(asked(), "left an edit without asking");
    // Saving does not ask, and stores the edit.
    c.open(&customer);
    c.set_customer_field("city", "Paris");
    record_leaving();
    assert_eq!(c.save_customer().unwrap(), "Saved.");
    assert!(!asked(), "asked when saving");
    assert_eq!(c.customer_input("city").value(), "Paris");
    // "×" counts as an edit too.
    c.b.find(css("button[data-clear='f:city']")).click();
    record_leaving();
    c.b.find(css("#back-to-list")).click();
    c.b.wait_url("the list", |u| !u.contains("/ana"));
    assert!(asked(), "left a removal without asking");
    assert_eq!(c.policy_violations(), Vec::<String>::new());
}

/// Now, in epoch milliseconds.
fn now_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(since.as_millis()).unwrap()
}

/// A POST of the API that must answer `status`; its body.
fn api_post(
    base: &str,
    key: &str,
    path: &str,
    body: serde_json::Value,
    status: u16,
) -> serde_json::Value {
    let (got, answer) = call(&agent(), "POST", &format!("{base}{path}"), key, Some(body));
    assert_eq!(got, status, "POST {path}: {answer}");
    answer
}

/// Behaviours in the audience builder (conditions on customers' events), kept in step with
/// the text form through the server, counted like the API counts, saved as a segment; and
/// a customer's timeline, newest first.
#[test]
fn console_event_conditions() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let Some(browser) = Browser::start() else {
        return;
    };
    let t = Instant::now();
    let data = tempfile::tempdir().unwrap();
    let (server, app, key) = server_with_app(data.path(), "Event Shop");
    let base = server.base.clone();
    let c = Console {
        b: browser,
        base: base.clone(),
    };
    c.record_policy_violations();

    // Two event types, and a few weeks of interactions of five customers (each purchase's
    // amount is 100 plus its age in days, so that the timeline's order can be read).
    api_post(
        &base,
        &key,
        &format!("/v1/apps/{app}/event-types"),
        json!({ "code": "purchase", "name": "Purchase",
                "properties": { "amount": "number", "currency": "string" } }),
        201,
    );
    api_post(
        &base,
        &key,
        &format!("/v1/apps/{app}/event-types"),
        json!({ "code": "email_open", "name": "Email open" }),
        201,
    );
    const DAY: i64 = 86_400_000;
    let now = now_ms();
    let purchases: [(&str, &[i64]); 4] = [
        ("ana@example.com", &[1, 5, 20, 60]),
        ("bob@example.com", &[3, 40]),
        ("carl@example.com", &[2, 29]),
        ("eve@example.com", &[35, 45]),
    ];
    let opens: [(&str, i64); 2] = [("ana@example.com", 10), ("dan@example.com", 2)];
    let mut events = Vec::new();
    for (customer, days) in purchases {
        for d in days {
            events.push(json!({ "customerId": customer, "type": "purchase", "channel": "web",
                "timestamp": now - d * DAY, "properties": { "amount": 100 + d, "currency": "EUR" } }));
        }
    }
    for (customer, d) in opens {
        events.push(
            json!({ "customerId": customer, "type": "email_open", "channel": "email",
            "timestamp": now - d * DAY }),
        );
    }
    let stored = api_post(
        &base,
        &key,
        &format!("/v1/apps/{app}/events"),
        json!({ "events": events }),
        200,
    );
    assert_eq!(stored["stored"], json!(events.len()), "{stored}");
    // Customers bought at least twice in the last 30 days: ana (1, 5, 20) and carl (2, 29).
    let frequent_buyers: u64 = purchases
        .iter()
        .filter(|(_, days)| days.iter().filter(|d| **d < 30).count() >= 2)
        .count() as u64;
    assert_eq!(frequent_buyers, 2);
    let api_count = |filter: &str| {
        api_post(
            &base,
            &key,
            &format!("/v1/apps/{app}/count"),
            json!({ "filter": filter }),
            200,
        )["count"]
            .as_u64()
            .unwrap()
    };
    c.b.wait("the customers the events created", || {
        (api_count("customerId exists") == 5).then_some(())
    });
    step(t, "event types and events posted");

    // Build "did purchase at least 2 times in the last 30 days". A new behaviour has no
    // event type: incomplete, not counted, and the keyboard is on the choice it lacks.
    c.sign_in(&key);
    c.open_customers(app);
    c.wait_count("5");
    c.builder_add_behaviour();
    assert_eq!(
        c.b.script(
            "return document.activeElement.getAttribute('aria-label');",
            vec![]
        ),
        json!("event type")
    );
    c.b.wait_text(
        css("#count-incomplete"),
        "(1 incomplete condition is not counted)",
    );
    assert!(
        c.b.find(css("#builder .cond.event.incomplete .incomplete-note"))
            .is_displayed()
    );
    assert_eq!(c.filter_text(), "");
    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("builder-behaviour-incomplete-1280.png"),
        c.b.screenshot(),
    )
    .unwrap();
    // Every control of the builder is labelled.
    let unlabelled = c.b.script(
        "return Array.from(document.querySelectorAll('#builder select, #builder input'))
           .filter(e => !e.getAttribute('aria-label') && !e.closest('label')).map(e => e.outerHTML);",
        vec![],
    );
    assert_eq!(unlabelled, json!([]), "controls without a label");
    c.behaviour_choose(0, "event type", 0, "purchase");
    c.b.wait_text(css("#count-incomplete"), "");
    assert_eq!(c.settled_count("did purchase"), api_count("did purchase"));
    c.behaviour_choose(0, "how many times", 0, "gte");
    c.behaviour_fill(0, "number of times", 0, "2");
    c.behaviour_choose(0, "when", 0, "last");
    // "In the last" arrives empty (a placeholder, not 30): incomplete until typed.
    c.b.wait_text(
        css("#count-incomplete"),
        "(1 incomplete condition is not counted)",
    );
    c.behaviour_fill(0, "how long", 0, "30");
    c.behaviour_choose(0, "unit of time", 0, "d");
    let canonical = "did purchase at_least 2 times within_last 30d";
    let counted = c.settled_count(canonical);
    assert_eq!(
        c.behaviours(),
        [[
            "what they did=did",
            "event type=purchase",
            "channel=",
            "how many times=gte",
            "number of times=2",
            "when=last",
            "how long=30",
            "unit of time=d"
        ]]
    );
    let api = api_count(canonical);
    assert_eq!(counted, api, "the console and the API count alike");
    // One audience: what the page counts is what it lists and what Export CSV downloads.
    let mut buyers: Vec<String> = purchases
        .iter()
        .filter(|(_, days)| days.iter().filter(|d| **d < 30).count() >= 2)
        .map(|(customer, _)| (*customer).to_owned())
        .collect();
    buyers.sort();
    c.b.wait("the rows of the behaviour", || {
        (c.customers_listed() == buyers).then_some(())
    });
    let exported = c.b.script(
        "var x = new XMLHttpRequest();
         x.open('GET', document.getElementById('export-link').href, false);
         x.send();
         return [x.status, x.responseText];",
        vec![],
    );
    assert_eq!(exported[0], 200, "{exported}");
    let csv = exported[1].as_str().unwrap_or("");
    let mut exported_ids: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap_or(""))
        .collect();
    exported_ids.dedup();
    assert_eq!(exported_ids, buyers, "{csv}");
    std::fs::write(dir.join("builder-behaviour-1280.png"), c.b.screenshot()).unwrap();
    step(t, "behaviour built and counted");

    // Saved as a segment: its page shows the canonical text; "Edit filter" brings it back
    // to the builder, and the text mode shows the canonical text.
    c.save_segment("Frequent buyers");
    assert_eq!(c.flash("ok"), "Segment saved.");
    assert_eq!(c.b.find(css(".filter-text")).text().trim(), canonical);
    assert_eq!(
        c.b.find(css("#segment-count")).text(),
        api.to_string(),
        "the segment's size is the count"
    );
    c.button("Edit filter").click();
    c.b.wait_url("the customers page of the segment", |u| {
        u.contains("segment=")
    });
    c.b.wait("the builder showing the behaviour", || {
        (c.behaviours().len() == 1).then_some(())
    });
    assert_eq!(c.behaviours()[0][4], "number of times=2");
    c.filter_mode("Text");
    assert_eq!(c.filter_text(), canonical);
    step(t, "segment saved");

    // Round trip: a filter typed with behaviours shows in the builder, control by control;
    // builder edits give the canonical text back.
    let typed = "did purchase on pos where (amount > 100 and currency = \"EUR\") within_last 180d \
                 and not last email_open before 7d ago and sum amount of purchase within_last 365d > 500";
    c.type_filter(typed);
    c.settled_count(typed);
    c.filter_mode("Builder");
    let rows = c.behaviours();
    assert_eq!(
        rows,
        [
            vec![
                "what they did=did",
                "event type=purchase",
                "channel=pos",
                "how many times=gte",
                "number of times=",
                "when=last",
                "how long=180",
                "unit of time=d",
                "where:",
                "property=amount",
                "property operator=gt",
                "property value=100",
                "where:",
                "property=currency",
                "property operator=eq",
                "property value=EUR",
            ],
            vec![
                "what they did=last",
                "event type=email_open",
                "channel=",
                "comparison=before",
                "when amount=7",
                "when unit=d",
                "when kind=ago",
            ],
            vec![
                "what they did=sum",
                "property=amount",
                "event type=purchase",
                "channel=",
                "when=last",
                "how long=365",
                "unit of time=d",
                "comparison=gt",
                "value=500",
            ],
        ],
    );
    assert_eq!(
        c.b.script(
            "return Array.from(document.querySelectorAll('#builder .cond.event'))
               .map(r => r.querySelector('label.not input').checked);",
            vec![]
        ),
        json!([false, true, false]),
        "only the second behaviour is negated"
    );
    c.behaviour_fill(0, "how long", 0, "90");
    c.behaviour_choose(2, "what they did", 0, "avg");
    c.behaviour_click(2, "+ Property condition");
    c.behaviour_choose(2, "property operator", 0, "gte");
    c.behaviour_fill(2, "property value", 0, "20");
    let edited = "did purchase on pos where (amount > 100 and currency = \"EUR\") within_last 90d \
                  and not last email_open before 7d ago \
                  and avg amount of purchase where amount >= 20 within_last 365d > 500";
    c.settled_count(edited);
    // An undeclared property, typed by hand, as text.
    c.behaviour_click(0, "+ Property condition");
    c.behaviour_choose(0, "property", 2, "*other");
    c.behaviour_fill(0, "property name", 0, "store");
    c.behaviour_choose(0, "property type", 0, "string");
    c.behaviour_choose(0, "property operator", 2, "starts_with");
    c.behaviour_fill(0, "property value", 2, "Mad");
    c.settled_count(&edited.replace(
        "currency = \"EUR\")",
        "currency = \"EUR\" and store starts_with \"Mad\")",
    ));
    for (width, height) in [(1280u32, 800u32), (390, 844)] {
        c.b.set_viewport(width, height);
        std::thread::sleep(std::time::Duration::from_millis(300));
        std::fs::write(
            dir.join(format!("builder-behaviours-edited-{width}.png")),
            c.b.full_page_screenshot(3000),
        )
        .unwrap();
    }
    c.b.set_viewport(1280, 800);
    step(t, "round trip");

    // A customer's timeline: every event, newest first.
    c.open_customer_from_list(app, "ana@example.com");
    c.b.find_visible(xpath(
        "//nav[contains(@class,'tabs')]//a[normalize-space()='Timeline']",
    ))
    .click();
    c.b.wait_url("the timeline tab", |u| u.contains("tab=timeline"));
    let items = c.b.script(
        "return Array.from(document.querySelectorAll('ol.timeline > li')).map(li => [
           li.querySelector('time').getAttribute('datetime'),
           li.querySelector('.event-type').textContent.trim(),
           Array.from(li.querySelectorAll('dl.props dd')).map(d => d.textContent.trim()).join(' ')]);",
        vec![],
    );
    let items: Vec<[String; 3]> = serde_json::from_value(items).unwrap();
    let shown: Vec<(&str, &str)> = items
        .iter()
        .map(|[_, ty, props]| (ty.as_str(), props.as_str()))
        .collect();
    assert_eq!(
        shown,
        [
            ("purchase", "101 EUR"),
            ("purchase", "105 EUR"),
            ("email_open", ""),
            ("purchase", "120 EUR"),
            ("purchase", "160 EUR"),
        ]
    );
    // The times are RFC 3339 in UTC with milliseconds, one length: in order as text.
    assert!(
        items
            .iter()
            .all(|[at, _, _]| at.len() == "2024-05-01T10:00:00.000Z".len() && at.ends_with('Z')),
        "{items:?}"
    );
    assert!(
        items.windows(2).all(|w| w[0][0] > w[1][0]),
        "newest first: {items:?}"
    );
    step(t, "timeline");

    assert_eq!(
        c.policy_violations(),
        Vec::<String>::new(),
        "the content security policy blocked part of the console"
    );

    // Last, as it needs the columnar engine's events: the count is the customers the
    // events posted make (the console and the API agreed above, whatever it is).
    assert_eq!(
        counted, frequent_buyers,
        "\"{canonical}\" counts the customers who bought twice in 30 days"
    );
}

// ---- the keyboard ----

const TAB: &str = "\u{E004}";
const ENTER: &str = "\u{E007}";
const ARROW_DOWN: &str = "\u{E015}";

impl Console {
    /// Presses `keys` (characters, or WebDriver's key codes) on whatever has the focus, as
    /// a keyboard does: no element is targeted.
    fn press(&self, keys: &str) {
        let mut actions = Vec::new();
        for k in keys.chars() {
            actions.push(json!({"type": "keyDown", "value": k.to_string()}));
            actions.push(json!({"type": "keyUp", "value": k.to_string()}));
        }
        self.b.cmd(
            "POST",
            "/actions",
            Some(json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]})),
        );
    }

    /// What has the focus: tag, class, its text or label, value.
    fn focused(&self) -> [String; 4] {
        let v = self.b.script(
            "var a = document.activeElement;
             return [a.tagName.toLowerCase(), a.className || '',
                     (a.tagName === 'BUTTON' ? a.textContent : a.getAttribute('aria-label') || '').trim(),
                     a.value === undefined ? '' : String(a.value)];",
            vec![],
        );
        serde_json::from_value(v).unwrap()
    }

    /// Presses Tab until the focus is on a control for which `is` holds (at most 60
    /// presses), and answers it.
    fn tab_to(&self, what: &str, is: impl Fn(&[String; 4]) -> bool) -> [String; 4] {
        for _ in 0..60 {
            self.press(TAB);
            let now = self.focused();
            if is(&now) {
                return now;
            }
        }
        panic!("Tab never reached {what}");
    }

    /// The chart bar (a link) whose title starts with `label`.
    fn drill(&self, label: &str) -> Element<'_> {
        self.b.wait(&format!("a bar {label:?}"), || {
            self.b.find_all(css("a.drill")).into_iter().find(|a| {
                a.find_all(css("title"))
                    .first()
                    .and_then(|t| t.property("textContent").as_str().map(str::to_owned))
                    .is_some_and(|t| t.starts_with(label))
            })
        })
    }

    /// Marks the focused element, to tell later whether it is still the same element (a
    /// control rebuilt under the focus would be a new one, unmarked).
    fn mark_focused(&self) {
        self.b
            .script("document.activeElement.unicoMark = true;", vec![]);
    }

    fn focused_is_marked(&self) -> bool {
        self.b
            .script("return document.activeElement.unicoMark === true;", vec![])
            == json!(true)
    }
}

/// The filter builder with the keyboard alone: "+ Condition" and "+ Group" put the focus
/// on the new condition, choosing a field or an operator (by typing or with the arrows)
/// keeps the focus on the very select, a two-group filter is built, counted and saved as
/// a segment. Also the value suggestions of a string field, the browser's back and forward
/// over filter edits, the chart bars that lead to their customers, the underscores of the
/// text box, and forms that fit a phone.
#[test]
fn console_builder_by_keyboard_and_drill_down() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let Some(browser) = Browser::start() else {
        return;
    };
    let t = Instant::now();
    let data = tempfile::tempdir().unwrap();
    let (server, app, key) = server_with_app(data.path(), "Keyboard Shop");
    for (name, ty) in [
        ("age", "number"),
        ("country", "string"),
        ("last_purchase_at", "datetime"),
    ] {
        api_post(
            &server.base,
            &key,
            &format!("/v1/apps/{app}/fields"),
            json!({"name": name, "type": ty}),
            201,
        );
    }
    let people = [
        ("c1", json!({"country": "ES", "age": 40})),
        ("c2", json!({"country": "ES", "age": 10})),
        ("c3", json!({"country": "ES", "age": 25})),
        ("c4", json!({"country": "FR", "age": 50})),
        (
            "c5",
            json!({"country": "ES", "last_purchase_at": "2026-11-02T10:00:00Z"}),
        ),
    ];
    let batch: Vec<_> = people
        .iter()
        .map(|(id, fields)| json!({"customerId": id, "fields": fields}))
        .collect();
    api_post(
        &server.base,
        &key,
        &format!("/v1/apps/{app}/customers/batch"),
        json!(batch),
        200,
    );
    let c = Console {
        b: browser,
        base: server.base.clone(),
    };
    c.record_policy_violations();
    c.sign_in(&key);
    c.open_customers(app);
    c.wait_count("5");
    step(t, "5 customers");

    // "+ Condition" by the keyboard: the focus lands on the new condition's field.
    let is_button = |text: &'static str| move |f: &[String; 4]| f[0] == "button" && f[2] == text;
    c.tab_to("+ Condition", is_button("+ Condition"));
    c.press(ENTER);
    let f = c.focused();
    assert_eq!((f[0].as_str(), f[1].as_str()), ("select", "field"), "{f:?}");
    // Typing a field's name chooses it; each change redraws the row, never the select.
    c.mark_focused();
    c.press("country");
    c.b.wait("country chosen", || {
        (c.focused()[3] == "country").then_some(())
    });
    assert!(
        c.focused_is_marked(),
        "the field select was rebuilt under the focus"
    );
    c.press(TAB);
    assert_eq!(c.focused()[1], "op");
    c.press(TAB);
    let f = c.focused();
    assert_eq!((f[0].as_str(), f[2].as_str()), ("input", "value"), "{f:?}");
    // The box suggests the field's values, most frequent first, with how many hold each.
    let suggested = c.b.wait("the country's suggestions", || {
        let v = c.b.script(
            "var l = document.activeElement.list;
             return l && l.options.length ? Array.from(l.options).map(o => o.value + ' ' + o.label) : null;",
            vec![],
        );
        serde_json::from_value::<Vec<String>>(v).ok()
    });
    assert_eq!(suggested, ["ES 4 customers", "FR 1 customer"]);
    c.press("ES");
    c.wait_count("4");

    // "+ Group": a nested group whose first condition has the focus.
    c.tab_to("+ Group", is_button("+ Group"));
    c.press(ENTER);
    assert_eq!(c.focused()[1], "field");
    c.mark_focused();
    c.press("age");
    c.b.wait("age chosen", || (c.focused()[3] == "age").then_some(()));
    assert!(
        c.focused_is_marked(),
        "the field select was rebuilt under the focus"
    );
    c.press(TAB);
    c.mark_focused();
    c.press(ARROW_DOWN);
    c.b.wait("≠ chosen", || (c.focused()[3] == "neq").then_some(()));
    c.press(ARROW_DOWN);
    c.b.wait("> chosen", || (c.focused()[3] == "gt").then_some(()));
    assert!(
        c.focused_is_marked(),
        "the operator select was rebuilt under the focus"
    );
    c.press(TAB);
    c.press("30");
    // The nested group's own "+ Condition" comes first in the tab order.
    c.tab_to("the group's + Condition", is_button("+ Condition"));
    c.press(ENTER);
    assert_eq!(c.focused()[1], "field");
    c.press("age");
    c.b.wait("age chosen", || (c.focused()[3] == "age").then_some(()));
    c.press(TAB);
    c.press(&ARROW_DOWN.repeat(4));
    c.b.wait("< chosen", || (c.focused()[3] == "lt").then_some(()));
    c.press(TAB);
    c.press("20");
    let text = "country = \"ES\" and (age > 30 or age < 20)";
    assert_eq!(c.settled_count(text), 2);
    step(t, "a two-group filter built with the keyboard");
    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("customers-keyboard-1280.png"), c.b.screenshot()).unwrap();

    // Saved as a segment with the keyboard too.
    c.tab_to("the segment's name", |f| {
        f[0] == "input" && f[2] == "Segment name"
    });
    c.press("Spain, young or not");
    c.press(ENTER);
    c.b.wait_text(css("main h1"), "Spain, young or not");
    assert_eq!(
        c.b.find(css("#segment-count")).text().trim(),
        "2",
        "the segment counts what the builder counted"
    );
    step(t, "saved as a segment");

    // Back and forward go through the audiences settled on.
    c.open_customers(app);
    c.wait_count("5");
    c.type_filter("country = \"FR\"");
    c.wait_count("1");
    c.b.wait("the rows of FR", || {
        (c.customers_listed() == ["c4"]).then_some(())
    });
    // Edits within two seconds are one step of the history; this is the next one.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    c.type_filter("age < 30");
    c.wait_count("2");
    c.b.wait("the rows under 30", || {
        (c.customers_listed() == ["c2", "c3"]).then_some(())
    });
    c.b.script("history.back();", vec![]);
    c.b.wait("back to FR", || {
        (c.filter_text() == "country = \"FR\"" && c.customers_listed() == ["c4"]).then_some(())
    });
    c.wait_count("1");
    c.b.script("history.back();", vec![]);
    c.b.wait("back to everyone", || {
        (c.filter_text().is_empty() && c.customers_listed().len() == 5).then_some(())
    });
    c.b.script("history.forward();", vec![]);
    c.b.wait("forward to FR", || {
        (c.filter_text() == "country = \"FR\"" && c.customers_listed() == ["c4"]).then_some(())
    });
    step(t, "back and forward over filter edits");

    // The text box's underscores are inside the box: it has a line height of its own.
    c.type_filter("last_purchase_at exists");
    assert_eq!(c.settled_count("last_purchase_at exists"), 1);
    let room = c.b.script(
        "var s = getComputedStyle(document.getElementById('filter'));
         return s.lineHeight === 'normal' ? 0 : parseFloat(s.lineHeight) / parseFloat(s.fontSize);",
        vec![],
    );
    assert!(room.as_f64().unwrap() >= 1.4, "line height {room}");
    std::fs::write(dir.join("customers-underscores-1280.png"), c.b.screenshot()).unwrap();

    // Insights: a bar leads to the customers it counts.
    c.open(&format!("/console/apps/{app}/insights"));
    c.drill("ES:").click();
    c.b.wait_url("the customers of ES", |u| u.contains("/customers?filter="));
    c.wait_count("4");
    assert_eq!(c.filter_text(), "country = \"ES\"");
    assert_eq!(c.customers_listed(), ["c1", "c2", "c3", "c5"]);
    c.open(&format!("/console/apps/{app}/insights"));
    c.drill("age:").click();
    c.wait_count("4");
    assert_eq!(c.filter_text(), "age exists");
    step(t, "chart bars drill down");
    assert_eq!(c.policy_violations(), Vec::<String>::new());
}

/// The admin runs applications from the console: creates one (its first key shown once,
/// copied with a button, and working), sets its time zone, creates and revokes a key.
#[test]
fn console_admin_manages_applications_and_keys() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let Some(browser) = Browser::start() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let c = Console {
        b: browser,
        base: server.base.clone(),
    };
    c.record_policy_violations();
    c.sign_in(ADMIN_KEY);
    c.open("/console/apps");
    c.b.find(css("#new-app input[name=name]"))
        .fill("Corner Shop");
    c.b.find(css("#new-app input[name=timezone]"))
        .fill("Europe/Lisbon");
    c.button("Create application").click();
    c.b.wait_text(css("main h1"), "Application created");
    let key = c.b.find(css("#new-key")).value();
    assert!(key.starts_with("unico_"), "{key}");
    c.button("Copy").click();
    c.b.wait_text(css("#copy-status"), "Copied to the clipboard.");
    let (status, apps) = call(
        &agent(),
        "GET",
        &format!("{}/v1/apps", server.base),
        &key,
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(apps["apps"][0]["timezone"], "Europe/Lisbon");
    let app = apps["apps"][0]["id"].as_i64().unwrap();

    c.open("/console/apps");
    let zone = c.b.find(css(&format!("#tz-{app}")));
    zone.fill("America/Mexico_City");
    c.button("Set time zone").click();
    c.b.wait_text(
        css(".flash.ok"),
        "Corner Shop is now on America/Mexico_City time.",
    );
    c.button("Create API key").click();
    c.b.wait_text(css("main h1"), "New API key");
    let second = c.b.find(css("#new-key")).value();
    c.open("/console/apps");
    let revoke = c.b.find(xpath(&format!(
        "//button[@aria-label={}]",
        xpath_literal(&format!("Revoke key {}…", &second[..14]))
    )));
    revoke.click();
    assert!(c.b.wait_dialog().contains("stops working at once"));
    c.b.accept_dialog();
    c.b.wait_text(css(".flash.ok"), "The key is revoked.");
    let (status, _) = call(
        &agent(),
        "GET",
        &format!("{}/v1/apps", server.base),
        &second,
        None,
    );
    assert_eq!(status, 401, "a revoked key stops working");
    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir).unwrap();
    for (width, height) in [(1280u32, 800u32), (390, 844)] {
        c.b.set_viewport(width, height);
        std::thread::sleep(std::time::Duration::from_millis(300));
        std::fs::write(
            dir.join(format!("apps-admin-{width}-full.png")),
            c.b.full_page_screenshot(4000),
        )
        .unwrap();
        if width < 500 {
            assert_eq!(c.overflowing(), Vec::<String>::new());
        }
    }
    assert_eq!(c.policy_violations(), Vec::<String>::new());
}

// ---- accessibility ----

/// axe-core's script, installed by `npm install` in `tests/axe` (as `.ci/run` does).
fn axe_source() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/axe/node_modules/axe-core/axe.min.js");
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the accessibility check needs axe-core: run `npm install --prefix \
             crates/unico/tests/axe --no-package-lock` ({}: {e})",
            path.display()
        )
    })
}

impl Console {
    /// Runs axe-core on the page as it is now; answers its serious and critical
    /// violations, each as "rule: what (where…)".
    fn axe_violations(&self, axe: &str) -> Vec<String> {
        if self.b.script("return typeof window.axe;", vec![]) != json!("object") {
            self.b.script(axe, vec![]);
        }
        let found = self.b.cmd(
            "POST",
            "/execute/async",
            Some(json!({
                "script": "var done = arguments[arguments.length - 1];
                   axe.run(document, { resultTypes: ['violations'] }).then(function (r) {
                     done(r.violations
                       .filter(function (v) { return v.impact === 'serious' || v.impact === 'critical'; })
                       .map(function (v) {
                         return v.id + ': ' + v.help + ' (' + v.nodes.slice(0, 3).map(function (n) { return n.target.join(' '); }).join(', ') + ')';
                       }));
                   }, function (e) { done(['axe failed: ' + e]); });",
                "args": []
            })),
        );
        serde_json::from_value(found).unwrap()
    }
}

/// Every page of the console, at desktop and phone widths, passes axe-core with no
/// serious or critical violation (names, labels, contrast, ARIA, landmarks…).
#[test]
fn console_pages_pass_an_accessibility_check() {
    let _one = ONE_BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let Some(browser) = Browser::start() else {
        return;
    };
    let axe = axe_source();
    let t = Instant::now();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &["--demo"]);
    let c = Console {
        b: browser,
        base: server.base.clone(),
    };
    let app = 1;
    let mut found = Vec::new();
    for (width, height) in [(1280u32, 800u32), (390, 844)] {
        c.b.cmd("DELETE", "/cookie", None);
        c.b.set_viewport(width, height);
        let mut check = |page: &str| {
            for v in c.axe_violations(&axe) {
                found.push(format!("{page} at {width}: {v}"));
            }
        };
        c.open("/console");
        c.b.find_visible(css("input[name=key]"));
        check("sign-in");
        c.sign_in(ADMIN_KEY);
        c.apps_listed();
        check("applications");
        c.open_customers(app);
        c.wait_count("5,000");
        c.builder_add_condition();
        c.builder_choose(0, "field", "country");
        c.builder_value(0, "ES");
        c.builder_add_behaviour();
        c.b.wait("the count of the filter", || {
            let t = c.b.text_now(css("#live-count"))?;
            (t != "5,000" && t != "…").then_some(())
        });
        check("customers with a filter");
        let first = c.customers_listed()[0].clone();
        c.open_customer_from_list(app, &first);
        check("a customer");
        c.set_customer_field("age", "old");
        c.save_customer().unwrap_err();
        check("a customer with a refused value");
        c.open(&format!("/console/apps/{app}/fields"));
        c.b.find(css("main table"));
        check("customer fields");
        c.open_customers(app);
        c.type_filter("tier = \"gold\"");
        c.save_segment(&format!("Gold ({width})"));
        check("a segment");
        c.segments_listed(app);
        check("segments");
        c.open(&format!("/console/apps/{app}/insights"));
        c.b.find(css("main h1"));
        check("insights");
        c.open(&format!("/console/apps/{app}/interactions"));
        c.b.find(css("main h1"));
        check("interactions");
        step(t, &format!("checked at {width}"));
    }
    assert_eq!(found, Vec::<String>::new());
}
