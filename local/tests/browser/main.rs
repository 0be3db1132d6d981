//! The web app in real headless Chromium (Debian's chromium + chromedriver, over WebDriver),
//! against the real local stack, a real redis-server and the scripted stub model.
//!
//! Layout, a story a module, each told in page-object steps (`page`) whose failures name what
//! they waited for:
//! * `page`: the stack a story runs against, the page's steps, and the checks of what is drawn
//!   (controls reachable at their centres, axe-core, the console, screenshots).
//! * `chat`: one conversation start to end, through a reload, a stop, a server killed and a lost
//!   connection mapping.
//! * `conversations`: several conversations, search, versions, models, rename, delete and undo.
//! * `seen`: a streaming reply as drawn, every control at every width, axe-core on every screen,
//!   the keyboard alone, and the README's screenshots.
//! * `expiry`: a session idle past its TTL.
//! * `bench`: the web app's figures (scripts/bench-frontend.sh; ignored by the suite).
//!
//! Needs `frontend/dist` (scripts/build-frontend.sh), chromium and axe-core; scripts/test.sh
//! provides them. Screenshots go to `target/screenshots/`, the README's to `docs/screenshots/`.

mod bench;
mod chat;
mod conversations;
mod expiry;
mod page;
mod seen;
