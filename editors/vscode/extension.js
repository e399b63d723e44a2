// The nhipl extension: starts `nhipl lsp` and connects VS Code to it.
"use strict";

const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function serverOptions() {
  const config = vscode.workspace.getConfiguration("nhipl");
  const command = config.get("server.command", "nhipl");
  const args = config.get("server.args", ["lsp", "--stdio"]);
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
