/// The example that ends each command's `--help` (ArgumentParser puts a discussion before the
/// options; the contract wants the example last).
enum Examples {
    static let byCommand: [String: [String]] = [
        "": [
            "job start -- make test        # returns at once with the job",
            "job wait 1 && job receive 1   # its output, once it is done",
        ],
        "start": ["job start --name build -- make -j4 test"],
        "invoke": ["job invoke --computer localhost --as-job -c 'uptime'"],
        "get": ["job get --state Failed -o list --property Name,Reason"],
        "receive": ["job receive build --wait --auto-remove"],
        "wait": ["job wait build test --timeout 600"],
        "stop": ["job stop 'crawl*' --grace 2"],
        "remove": ["job remove --state Completed"],
        "foreach": ["job foreach --throttle 4 --input-file logs.txt -- gzip -9 {}"],
        "suspend": ["job suspend build && job resume build"],
        "resume": ["job resume build"],
        "restart": ["job restart nightly"],
        "queue": ["job queue set build --limit 2 && job start --queue build -- make a"],
        "queue set": ["job queue set build --limit 2"],
        "queue get": ["job queue get -o json"],
        "queue remove": ["job queue remove build"],
        "session": ["job session new --name db && job invoke --session db -c 'cd /srv; export X=1' && job invoke --session db -c 'echo $X'"],
        "session new": ["job session new --name db --shell /bin/bash"],
        "session get": ["job session get -o json"],
        "session remove": ["job session remove db"],
        "daemon": ["job daemon status -o json"],
        "daemon start": ["job daemon start"],
        "daemon stop": ["job daemon stop"],
        "daemon status": ["job daemon status"],
        "daemon run": ["ExecStart=/usr/local/bin/job daemon run"],
        "daemon unit": [
            "job daemon unit > ~/.config/systemd/user/jobd.service",
            "systemctl --user enable --now jobd && loginctl enable-linger",
        ],
    ]

    /// The example for the command a `--help` command line names.
    static func text(for args: [String]) -> String {
        var words = Array(args.prefix { !$0.hasPrefix("-") })
        if words.first == "help" { words.removeFirst() }
        let key = words.count >= 2 && byCommand["\(words[0]) \(words[1])"] != nil
            ? "\(words[0]) \(words[1])" : (words.first.flatMap { byCommand[$0] != nil ? $0 : nil } ?? "")
        return "EXAMPLE:\n" + (byCommand[key] ?? []).map { "  " + $0 }.joined(separator: "\n") + "\n"
    }
}
