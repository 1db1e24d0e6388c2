//! The page shell: head, the navigation (with room for the screens still to come) and
//! the sign-in page. Markup is built with maud, which escapes every interpolated value.

use maud::{DOCTYPE, Markup, html};
use unico_core::Application;

use super::session::CsrfToken;

/// Which section of the navigation is current.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Customers,
    Fields,
    Segments,
    Insights,
    Interactions,
    Apps,
}

/// The page's head; with a session, its form token for the scripts' requests.
fn head(title: &str, csrf: Option<&CsrfToken>) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            @if let Some(csrf) = csrf { meta name="unico-csrf" content=(csrf.as_str()); }
            title { (title) " · Unico" }
            link rel="stylesheet" href="/console/assets/app.css";
        }
    }
}

/// A console page for `app`, with the navigation and `body`. `csrf` is the session's form
/// token, when the page knows the session (sign-out is a form too).
pub fn page(
    title: &str,
    app: Option<&Application>,
    section: Section,
    csrf: Option<&CsrfToken>,
    body: Markup,
) -> Markup {
    let link = |s: Section, label: &str, href: String| {
        html! { a class=(if s == section { "on" } else { "" }) href=(href) { (label) } }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, csrf))
            body {
                div class="shell" {
                    aside class="side" {
                        div class="logo" { "uni" span { "co" } }
                        @if let Some(app) = app {
                            div class="app" { (app.name.as_str()) " · " (app.timezone.as_str()) }
                        }
                        nav {
                            @if let Some(app) = app {
                                (link(Section::Customers, "Customers", format!("/console/apps/{}/customers", app.id)))
                                (link(Section::Fields, "Customer fields", format!("/console/apps/{}/fields", app.id)))
                                (link(Section::Segments, "Segments", format!("/console/apps/{}/segments", app.id)))
                                (link(Section::Insights, "Insights", format!("/console/apps/{}/insights", app.id)))
                                (link(Section::Interactions, "Interactions", format!("/console/apps/{}/interactions", app.id)))
                                span class="soon" title="coming soon" { "Webhooks" }
                            }
                            (link(Section::Apps, "Applications", "/console/apps".to_owned()))
                        }
                        form method="post" action="/console/sign-out" {
                            @if let Some(csrf) = csrf { (csrf) }
                            button class="ghost" type="submit" { "Sign out" }
                        }
                    }
                    main class="main" { (body) }
                }
                script src="/console/assets/app.js" {}
            }
        }
    }
}

/// The sign-in page, with an optional error.
pub fn sign_in(error: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head("Sign in", None))
            body {
                div class="signin card" {
                    div class="logo" { "uni" span { "co" } }
                    p class="sub" { "Sign in with an application's API key, or with the admin key to reach every application." }
                    @if let Some(e) = error {
                        div class="flash bad" { (e) }
                    }
                    form method="post" action="/console/sign-in" {
                        div class="row" {
                            input class="grow" type="password" name="key" placeholder="unico_…" autocomplete="off" required autofocus aria-label="API key or admin key";
                            button type="submit" { "Sign in" }
                        }
                    }
                    p class="hint" { "The admin key is printed at the first start and kept in the data directory's admin.key." }
                }
            }
        }
    }
}
