//! Reads kernel signatures out of Metal Shading Language source: names, parameter types
//! and the `[[...]]` attribute of each parameter. Enough for the kernels in `shaders/`;
//! anything it does not understand is an error that names it, never a silent guess.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::text::{balanced, is_ident_char, line_of, split_top_level, strip_comments};

/// What a kernel parameter is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binding {
    /// `[[buffer(n)]]`.
    Buffer(u32),
    /// A built-in value such as `[[thread_position_in_grid]]` (the attribute's name).
    BuiltIn(&'static str),
}

/// The built-in attributes the launcher provides (fields of `ThreadPos` in the harness).
pub const BUILT_INS: [&str; 11] = [
    "thread_position_in_grid",
    "thread_position_in_threadgroup",
    "threadgroup_position_in_grid",
    "threads_per_threadgroup",
    "threadgroups_per_grid",
    "threads_per_grid",
    "thread_index_in_threadgroup",
    "simdgroup_index_in_threadgroup",
    "thread_index_in_simdgroup",
    "threads_per_simdgroup",
    "simdgroups_per_threadgroup",
];

/// One kernel parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// The declared type, as written (`device const float*`).
    pub ty: String,
    /// The parameter's name.
    pub name: String,
    /// Its attribute.
    pub binding: Binding,
}

/// One `kernel void name(...)` declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kernel {
    /// The function name, which the bridge asks the Metal library for.
    pub name: String,
    /// Parameters in declaration order.
    pub params: Vec<Param>,
    /// The file it is declared in.
    pub file: PathBuf,
    /// 1-based line of the declaration.
    pub line: usize,
}

impl Kernel {
    /// The parameters bound to buffers, as (index, name).
    pub fn buffers(&self) -> impl Iterator<Item = (u32, &str)> {
        self.params.iter().filter_map(|p| match p.binding {
            Binding::Buffer(i) => Some((i, p.name.as_str())),
            Binding::BuiltIn(_) => None,
        })
    }
}

impl fmt::Display for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}:{})", self.name, self.file.display(), self.line)
    }
}

/// Every kernel declared in `source` (the text of `file`).
pub fn parse_kernels(source: &str, file: &Path) -> Result<Vec<Kernel>, String> {
    let text = strip_comments(source);
    let mut kernels = Vec::new();
    let mut search = 0;
    while let Some(found) = find_word(&text, "kernel", search) {
        search = found + "kernel".len();
        let after = text[search..].trim_start();
        let Some(after_void) = after.strip_prefix("void") else {
            continue;
        };
        if after_void.starts_with(is_ident_char) {
            continue;
        }
        let name: String = after_void
            .trim_start()
            .chars()
            .take_while(|&c| is_ident_char(c))
            .collect();
        let line = line_of(&text, found);
        let at = |msg: String| format!("{}:{line}: {msg}", file.display());
        if name.is_empty() {
            return Err(at("a kernel without a name".into()));
        }
        let open = text[found..]
            .find('(')
            .map(|o| found + o)
            .ok_or_else(|| at(format!("kernel {name} has no parameter list")))?;
        let (list, end) =
            balanced(&text, open).ok_or_else(|| at(format!("kernel {name}: unbalanced `(`")))?;
        let params = split_top_level(list)
            .into_iter()
            .map(|p| parse_param(p).map_err(|e| at(format!("kernel {name}: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        kernels.push(Kernel {
            name,
            params,
            file: file.to_path_buf(),
            line,
        });
        search = end;
    }
    Ok(kernels)
}

/// Every kernel in every `*.metal` file of `dir`, files in name order.
pub fn parse_dir(dir: &Path) -> Result<Vec<Kernel>, String> {
    let mut kernels = Vec::new();
    for file in metal_files(dir)? {
        let source = std::fs::read_to_string(&file)
            .map_err(|e| format!("reading {}: {e}", file.display()))?;
        kernels.extend(parse_kernels(&source, &file)?);
    }
    Ok(kernels)
}

/// The `*.metal` files of `dir`, sorted.
pub fn metal_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "metal"))
        .collect();
    files.sort();
    Ok(files)
}

fn parse_param(text: &str) -> Result<Param, String> {
    let (decl, attr) = match text.find("[[") {
        Some(start) => {
            let end = text[start..]
                .find("]]")
                .map(|e| start + e)
                .ok_or_else(|| format!("unclosed `[[` in `{text}`"))?;
            (&text[..start], text[start + 2..end].trim())
        }
        None => return Err(format!("parameter `{text}` has no [[...]] attribute")),
    };
    let decl = decl.trim();
    let name_start = decl.rfind(|c: char| !is_ident_char(c)).map_or(0, |i| i + 1);
    let (ty, name) = (decl[..name_start].trim(), &decl[name_start..]);
    if name.is_empty() || ty.is_empty() {
        return Err(format!("cannot split `{decl}` into a type and a name"));
    }
    let binding = if let Some(index) = attr
        .strip_prefix("buffer(")
        .and_then(|r| r.strip_suffix(')'))
    {
        Binding::Buffer(
            index
                .trim()
                .parse()
                .map_err(|_| format!("`[[{attr}]]`: the index is not an integer"))?,
        )
    } else if let Some(known) = BUILT_INS.iter().find(|&&b| b == attr) {
        Binding::BuiltIn(known)
    } else {
        return Err(format!(
            "the attribute `[[{attr}]]` of `{name}` is not supported by the emulation"
        ));
    };
    Ok(Param {
        ty: ty.split_whitespace().collect::<Vec<_>>().join(" "),
        name: name.to_string(),
        binding,
    })
}

/// The byte offset of the next occurrence of `word` as a whole word at or after `from`.
pub fn find_word(text: &str, word: &str, from: usize) -> Option<usize> {
    let mut at = from;
    while let Some(found) = text[at..].find(word).map(|f| at + f) {
        let before = text[..found].chars().next_back();
        let after = text[found + word.len()..].chars().next();
        if !before.is_some_and(is_ident_char) && !after.is_some_and(is_ident_char) {
            return Some(found);
        }
        at = found + word.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_kernel() {
        let src = "// kernel void commented(int x [[buffer(9)]])\n\
                   kernel void k(device const float* A [[buffer(0)]],\n\
                   constant uint& M [[ buffer(3) ]], uint2 gid [[thread_position_in_grid]]) {}";
        let kernels = parse_kernels(src, Path::new("x.metal")).unwrap();
        assert_eq!(kernels.len(), 1);
        let k = &kernels[0];
        assert_eq!((k.name.as_str(), k.line), ("k", 2));
        assert_eq!(k.params[0].ty, "device const float*");
        assert_eq!(k.params[1].binding, Binding::Buffer(3));
        assert_eq!(
            k.params[2].binding,
            Binding::BuiltIn("thread_position_in_grid")
        );
        assert_eq!(k.buffers().collect::<Vec<_>>(), [(0, "A"), (3, "M")]);
    }

    #[test]
    fn rejects_what_it_cannot_bind() {
        let src = "kernel void k(threadgroup float* t [[threadgroup(0)]]) {}";
        let err = parse_kernels(src, Path::new("x.metal")).unwrap_err();
        assert!(err.contains("threadgroup(0)"), "{err}");
    }
}
