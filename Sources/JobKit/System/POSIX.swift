import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The system's words for an errno, for one-line reasons.
func errnoMessage(_ code: Int32 = errno) -> String { String(cString: strerror(code)) }

/// Calls `body` with a NULL-terminated C array of the strings, valid only during the call.
func withCStringArray<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
    var pointers = strings.map { strdup($0) }
    pointers.append(nil)
    defer { for p in pointers { free(p) } }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}
