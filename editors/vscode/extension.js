// The nhipl extension: starts `nhipl lsp` and connects VS Code to it.
"use strict";

const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

// `${workspaceFolder}` in the settings stands for the first workspace folder.
function expand(value) {
  const folders = vscode.workspace.workspaceFolders;
  const folder = folders && folders.length ? folders[0].uri.fsPath : "";
  return value.split("${workspaceFolder}").join(folder);
}

function serverOptions() {
  const config = vscode.workspace.getConfiguration("nhipl");
  const command = expand(config.get("server.command", "nhipl"));
  const args = config.get("server.args", ["lsp", "--stdio"]).map(expand);
  return { command, args };
}

async function activate(context) {
  client = new LanguageClient("nhipl", "nhipl language server", serverOptions(), {
    documentSelector: [{ scheme: "file", language: "nhipl" }],
    synchronize: { fileEvents: vscode.workspace.createFileSystemWatcher("**/*.nhipl") },
  });
  context.subscriptions.push(
    vscode.commands.registerCommand("nhipl.restartServer", async () => {
      await client.restart();
    })
  );
  await client.start();
}

async function deactivate() {
  if (client) {
    await client.stop();
  }
}

module.exports = { activate, deactivate };
