//! The page's components, one per file.

mod dialog;
mod header;
mod input;
mod loader;
mod message_list;
mod sidebar;
mod status;
mod toast;
mod welcome;

pub use dialog::{Dialog, TextDialog};
pub use header::ChatHeader;
pub use input::MessageInput;
pub use loader::SessionRestoreLoader;
pub use message_list::MessageList;
pub use sidebar::Sidebar;
pub use status::ConnectionStatus;
pub use toast::Toasts;
pub use welcome::WelcomeModal;
