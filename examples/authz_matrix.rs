//! Prints the key-type × operation matrix (pasted into README.md between the authz-matrix markers).
fn main() {
    print!("{}", keyward::domain::authz::matrix_markdown());
}
