from voiceagent.cli import main

main()
