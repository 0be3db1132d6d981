//! Markdown to safe HTML: GitHub-flavoured tables, lists, strikethrough and fenced code (with
//! syntax highlighting and a copy button), parsed by pulldown-cmark.
//!
//! Whatever the model or a person writes renders inert: raw HTML becomes visible text, links and
//! images keep only `http`, `https` and `mailto` targets (anything else, `javascript:` included,
//! becomes `#`), and images render as links (no third-party requests from the page).

use pulldown_cmark::{CodeBlockKind, CowStr, Event, Options, Parser, Tag, TagEnd};

/// Renders markdown to sanitized HTML.
pub fn render(markdown: &str) -> String {
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    let mut events = Vec::new();
    let mut code: Option<(String, String)> = None;
    for event in Parser::new_ext(markdown, options) {
        if let Some((language, text)) = code.as_mut() {
            match event {
                Event::Text(t) => text.push_str(&t),
                Event::End(TagEnd::CodeBlock) => {
                    let html = code_block(language, text);
                    events.push(Event::Html(CowStr::from(html)));
                    code = None;
                }
                _ => {}
            }
            continue;
        }
        events.push(match event {
            Event::Start(Tag::CodeBlock(kind)) => {
                let language = match kind {
                    CodeBlockKind::Fenced(info) => info.split_whitespace().next().unwrap_or_default().to_string(),
                    CodeBlockKind::Indented => String::new(),
                };
                code = Some((language, String::new()));
                continue;
            }
            Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
            Event::Start(Tag::Link { link_type, dest_url, title, id }) => {
                Event::Start(Tag::Link { link_type, dest_url: safe_url(dest_url), title, id })
            }
            Event::Start(Tag::Image { link_type, dest_url, title, id }) => {
                Event::Start(Tag::Link { link_type, dest_url: safe_url(dest_url), title, id })
            }
            Event::End(TagEnd::Image) => Event::End(TagEnd::Link),
            other => other,
        });
    }
    let mut html = String::with_capacity(markdown.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, events.into_iter());
    html
}

fn safe_url(url: CowStr<'_>) -> CowStr<'_> {
    let lower = url.trim().to_ascii_lowercase();
    let scheme_end = lower.find(':');
    let path_start = lower.find(['/', '?', '#']).unwrap_or(lower.len());
    let has_scheme = scheme_end.is_some_and(|end| end < path_start);
    let allowed = ["http:", "https:", "mailto:"].iter().any(|s| lower.starts_with(s));
    if has_scheme && !allowed {
        CowStr::from("#")
    } else {
        url
    }
}

fn escape(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

fn code_block(language: &str, code: &str) -> String {
    let mut html = String::from("<div class=\"code\"><div class=\"code-bar\"><span>");
    escape(language, &mut html);
    html.push_str(
        // The block scrolls sideways when a line is long: focusable, so a keyboard can scroll it.
        "</span><button type=\"button\" class=\"copy\" aria-label=\"Copy code\">Copy</button></div><pre tabindex=\"0\"><code>",
    );
    highlight(language, code, &mut html);
    html.push_str("</code></pre></div>");
    html
}

const KEYWORDS: &[&str] = &[
    "as",
    "async",
    "await",
    "break",
    "case",
    "catch",
    "class",
    "const",
    "continue",
    "def",
    "default",
    "do",
    "elif",
    "else",
    "enum",
    "except",
    "export",
    "extends",
    "false",
    "finally",
    "fn",
    "for",
    "from",
    "func",
    "function",
    "if",
    "impl",
    "import",
    "in",
    "interface",
    "lambda",
    "let",
    "loop",
    "match",
    "mod",
    "mut",
    "new",
    "nil",
    "None",
    "not",
    "null",
    "package",
    "pass",
    "pub",
    "return",
    "self",
    "Self",
    "static",
    "struct",
    "switch",
    "this",
    "throw",
    "trait",
    "True",
    "False",
    "true",
    "try",
    "type",
    "typeof",
    "use",
    "var",
    "void",
    "where",
    "while",
    "with",
    "yield",
];

/// A small lexer that colours comments, strings, numbers and keywords of C-like, Rust, Python,
/// JavaScript and shell code; good enough for chat answers, far lighter than a grammar engine.
fn highlight(language: &str, code: &str, out: &mut String) {
    let hash_comments =
        matches!(language, "python" | "py" | "sh" | "bash" | "shell" | "ruby" | "rb" | "yaml" | "yml" | "toml" | "");
    let chars: Vec<char> = code.chars().collect();
    let mut i = 0;
    let span = |class: &str, text: &str, out: &mut String| {
        out.push_str("<span class=\"tok-");
        out.push_str(class);
        out.push_str("\">");
        escape(text, out);
        out.push_str("</span>");
    };
    while i < chars.len() {
        let c = chars[i];
        let rest_starts = |s: &str| chars[i..].iter().take(s.len()).copied().eq(s.chars());
        if rest_starts("//") || (hash_comments && c == '#') {
            let end = chars[i..].iter().position(|&c| c == '\n').map_or(chars.len(), |p| i + p);
            span("comment", &chars[i..end].iter().collect::<String>(), out);
            i = end;
        } else if rest_starts("/*") {
            let end = (i + 2..chars.len().saturating_sub(1))
                .find(|&j| chars[j] == '*' && chars[j + 1] == '/')
                .map_or(chars.len(), |j| j + 2);
            span("comment", &chars[i..end].iter().collect::<String>(), out);
            i = end;
        } else if c == '"' || c == '\'' || c == '`' {
            let mut j = i + 1;
            while j < chars.len() && chars[j] != c && chars[j] != '\n' {
                j += if chars[j] == '\\' { 2 } else { 1 };
            }
            let end = (j + 1).min(chars.len());
            span("string", &chars[i..end].iter().collect::<String>(), out);
            i = end;
        } else if c.is_ascii_digit() {
            let end = chars[i..]
                .iter()
                .position(|c| !(c.is_ascii_alphanumeric() || *c == '.' || *c == '_'))
                .map_or(chars.len(), |p| i + p);
            span("number", &chars[i..end].iter().collect::<String>(), out);
            i = end;
        } else if c.is_alphabetic() || c == '_' {
            let end =
                chars[i..].iter().position(|c| !(c.is_alphanumeric() || *c == '_')).map_or(chars.len(), |p| i + p);
            let word: String = chars[i..end].iter().collect();
            if KEYWORDS.contains(&word.as_str()) {
                span("keyword", &word, out);
            } else {
                escape(&word, out);
            }
            i = end;
        } else {
            escape(&c.to_string(), out);
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_html_renders_as_text() {
        let html = render("hi <script>alert(1)</script> <img src=x onerror=alert(1)>");
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
    }

    #[test]
    fn dangerous_links_are_neutralised() {
        for link in ["javascript:alert(1)", "JavaScript:alert(1)", " javascript:x", "data:text/html,x", "vbscript:x"] {
            let html = render(&format!("[click]({link})"));
            assert!(html.contains("href=\"#\""), "{link}: {html}");
        }
        assert!(render("[ok](https://example.com/a?b=c)").contains("href=\"https://example.com/a?b=c\""));
        assert!(render("[rel](/docs#x)").contains("href=\"/docs#x\""));
        let image = render("![x](javascript:alert(1))");
        assert!(!image.contains("<img") && image.contains("href=\"#\""), "{image}");
    }

    #[test]
    fn tables_lists_and_code_render() {
        let html = render("| a | b |\n|---|---|\n| 1 | 2 |\n\n- one\n- two\n\n```rust\nlet x = \"<b>\"; // hi\n```\n");
        assert!(html.contains("<table>"), "{html}");
        assert!(html.contains("<li>one</li>"), "{html}");
        assert!(html.contains("<span class=\"tok-keyword\">let</span>"), "{html}");
        assert!(html.contains("<span class=\"tok-string\">&quot;&lt;b&gt;&quot;</span>"), "{html}");
        assert!(html.contains("<span class=\"tok-comment\">// hi</span>"), "{html}");
        assert!(html.contains("class=\"copy\""), "{html}");
    }

    #[test]
    fn code_blocks_escape_html() {
        let html = render("```\n<script>alert(1)</script>\n```");
        assert!(!html.contains("<script>"), "{html}");
    }
}
