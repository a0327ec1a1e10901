import FoundationEssentials

#if canImport(Glibc)
import Glibc
#endif

extension JobHome {
    /// Why this home cannot be trusted, or nil when it can: checked as ssh's StrictModes checks
    /// `~/.ssh`. The home must be a directory of the user's that no one else may write, and
    /// every directory above it the user's or root's, and writable by others only when sticky
    /// (`/tmp`): otherwise someone else could put their own socket where the client looks, and
    /// receive its next command line and environment. A home not made yet is judged by the
    /// directories it would be made in.
    public func distrust(uid: uid_t = getuid()) -> String? {
        var existing = path
        var info = stat()
        while stat(existing, &info) != 0 {
            guard errno == ENOENT, existing != "/" else { return "cannot look at \(existing): \(String(cString: strerror(errno)))" }
            existing = Self.parent(of: existing)
        }
        // Judged where it really is: a link's target, and the directories above that.
        guard let resolved = realpath(existing, nil) else { return "cannot look at \(existing): \(String(cString: strerror(errno)))" }
        var directory = String(cString: resolved)
        free(resolved)
        if existing == path {
            guard info.st_mode & S_IFMT == S_IFDIR else { return "the home \(path) is not a directory; use another --home" }
            if info.st_uid != uid {
                return "the home \(path) belongs to user \(info.st_uid), not to you (\(uid)); use a home of your own"
            }
            if info.st_mode & 0o022 != 0 {
                return "the home \(path) may be written by others (mode \(String(info.st_mode & 0o7777, radix: 8))); run chmod go-w \(path)"
            }
            directory = Self.parent(of: directory)
        }
        while true {
            guard stat(directory, &info) == 0 else { return "cannot look at \(directory): \(String(cString: strerror(errno)))" }
            if info.st_uid != uid && info.st_uid != 0 {
                return "\(directory) belongs to user \(info.st_uid): they could replace the home \(path); use a home under a directory of yours"
            }
            if info.st_mode & 0o022 != 0 && info.st_mode & S_ISVTX == 0 {
                return "\(directory) may be written by others (mode \(String(info.st_mode & 0o7777, radix: 8))): they could replace the home \(path); use another --home"
            }
            if directory == "/" { return nil }
            directory = Self.parent(of: directory)
        }
    }

    private static func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return "/" }
        return String(path[..<slash])
    }
}
