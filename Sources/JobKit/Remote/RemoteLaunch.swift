import CJobKitSystem
import Foundation
import JobModel

#if canImport(Glibc)
import Glibc
#endif

/// Remote children: their ssh, or their session through the host's master, under a supervisor.
extension JobManager {
    /// A remote child runs its ssh under a supervisor, like a local child; locally ssh runs in
    /// `/` (the command runs in the remote user's home). `throughMaster`: a master answers,
    /// and the supervisor asks it to run the command itself, with no ssh (ssh runs if the
    /// master has gone by then).
    func spawnRemote(
        _ id: Int, link: SSHLink, plan: LaunchPlan, form: RemoteCommand.Form, throughMaster: Bool = false
    ) -> [JobRecord] {
        do {
            try prepareSSH(link)
        } catch {
            return table.leafEnded(id, outcome: .failed(error.message), at: Date(), recorded: 0)
        }
        // The same line either way: the master runs it, or ssh does when no master answers.
        let line = RemoteCommand.line(for: plan.spec.command, form: form)
        return spawnLeaf(
            id,
            Supervisor.Job(
                argv: link.jobArguments(line: line, log: sshLogPath(id)), workingDirectory: "/",
                environment: plan.spec.environment, holdStdin: true,
                throughMaster: throughMaster ? Supervisor.ThroughMaster(socket: link.controlPath, command: line) : nil))
    }

    /// Makes the control sockets' directory and the ssh configuration `link` uses.
    func prepareSSH(_ link: SSHLink) throws(JobError) {
        let key = link.configFile ?? ""
        guard !sshConfigsWritten.contains(key) else { return }
        if sshConfigsWritten.isEmpty { try SSHLink.prepare(home: home) }
        try link.writeConfig()
        sshConfigsWritten.insert(key)
    }

    /// Asks a computer's login shell (through its master) whether the wrapper can run in it
    /// directly, then starts the child.
    func connect(_ id: Int) async {
        guard let child = table[id], !child.state.isFinished, let parentId = child.parentId,
            let plan = plan(of: parentId)
        else { return }
        let link = SSHLink.make(host: child.location, configFile: plan.options.sshConfigFile, home: home)
        var status: Int32?
        if (try? prepareSSH(link)) != nil {
            status = try? await runToEnd(link.probeArguments, environment: plan.spec.environment)
        }
        let form: RemoteCommand.Form = status == RemoteCommand.posixProbeAnswer ? .direct : .viaSh
        // 255: ssh could not ask; it is asked again next time.
        if let status, status != 255, let master = link.masterIdentity {
            shellForms[link.controlPath] = (master, form)
        }
        // Left running without a supervisor, a later engine starts it again.
        guard !isShutDown, let record = table[id], !record.state.isFinished else { return }
        var changed: [JobRecord]
        if record.stopRequested {
            changed = table.leafEnded(id, outcome: .cancelled, at: Date(), recorded: 0)
        } else {
            changed = spawnRemote(id, link: link, plan: plan, form: form, throughMaster: status.map { $0 != 255 } ?? false)
        }
        changed += schedule(after: changed)
        try? persist(changed)
    }

    nonisolated func sshLogPath(_ id: Int) -> String { supervisor.prefix(id) + ".ssh" }
}
